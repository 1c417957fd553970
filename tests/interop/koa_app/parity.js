'use strict';

// One-shot scenario runner for koasession's parity tests (tests/interop/test_parity_interop.py).
//
// Usage: node parity.js '<scenario JSON>'; prints one JSON line with the results.
//
// Scenario: {
//   keys: ["a", "b"], algorithm: "sha1",
//   options: { ...koa-session options (maxAge, rolling, renew, key...) },
//   store: "memory" | undefined   (a recording in-memory store: every set() is reported)
//   requests: [{ path: "/set?x=1", cookie: "koa.sess=...; koa.sess.sig=...", now: <ms> }]
//             (cookie "$jar": the cookies the earlier responses set, as a browser would send)
// }
// Routes (as in server.js, plus):
//   /set?k=v  /setjson?data=JSON  /get  /clear
//   /save?k=v                     set fields, then `await ctx.session.save()`
//   /options?opts=JSON&data=JSON  assign ctx.sessionOptions fields (encode: "hex" means a hex
//                                 JSON encoder), then set fields from data
// Result per request: { status, setCookie: [...], body, events: [{name, key, value}],
//                       storeSets: [{key, data, maxAge, changed, rolling}] }

const http = require('node:http');
const Koa = require('koa');
const Keygrip = require('keygrip');
const sessionModule = require('koa-session');

const createSession = sessionModule.createSession || sessionModule.default || sessionModule;
const scenario = JSON.parse(process.argv[2]);

const app = new Koa();
app.keys = new Keygrip(scenario.keys || ['a', 'b'], scenario.algorithm || 'sha1');

let events = [];
for (const name of ['missed', 'expired', 'invalid']) {
  app.on(`session:${name}`, ({ key, value }) => {
    events.push({ name, key: key === undefined ? null : key, value: value === undefined ? null : value });
  });
}

let storeSets = [];
const options = { ...(scenario.options || {}) };
if (scenario.store === 'memory') {
  const entries = new Map();
  options.store = {
    async get(key) {
      const raw = entries.get(key);
      return raw === undefined ? undefined : JSON.parse(raw);
    },
    async set(key, data, maxAge, { changed, rolling }) {
      const raw = JSON.stringify(data);
      storeSets.push({ key, json: raw, maxAge, changed, rolling });
      entries.set(key, raw);
    },
    async destroy(key) {
      entries.delete(key);
    },
  };
}

// Pin Date.now() for the whole request, koa-session's commit included.
app.use(async (ctx, next) => {
  const fake = ctx.get('x-fake-now');
  if (!fake) return next();
  const realNow = Date.now;
  const pinned = Number(fake);
  Date.now = () => pinned;
  try {
    await next();
  } finally {
    Date.now = realNow;
  }
});

app.use(async (ctx, next) => {
  try {
    await next();
  } catch (err) {
    ctx.status = err.status || 500;
    ctx.body = { error: String(err && err.message) };
  }
});

app.use(createSession(options, app));

const hexEncode = (data) => Buffer.from(JSON.stringify(data)).toString('hex');

function describe(ctx) {
  const sess = ctx.session;
  if (!sess) return { session: null };
  return { session: sess.toJSON(), isNew: Boolean(sess.isNew), maxAge: sess.maxAge ?? null };
}

app.use(async (ctx) => {
  const setFields = (fields) => {
    for (const [name, value] of Object.entries(fields)) ctx.session[name] = value;
  };
  switch (ctx.path) {
    case '/set':
      setFields(Object.fromEntries(Object.entries(ctx.query)));
      break;
    case '/setjson':
      setFields(JSON.parse(ctx.query.data || '{}'));
      break;
    case '/save':
      setFields(Object.fromEntries(Object.entries(ctx.query)));
      await ctx.session.save();
      break;
    case '/options': {
      const opts = JSON.parse(ctx.query.opts || '{}');
      if (opts.encode === 'hex') opts.encode = hexEncode;
      Object.assign(ctx.sessionOptions, opts);
      setFields(JSON.parse(ctx.query.data || '{}'));
      break;
    }
    case '/clear':
      ctx.session = null;
      break;
    case '/get':
      break;
    default:
      ctx.status = 404;
  }
  ctx.body = describe(ctx);
});

function request(port, { path, cookie, now }) {
  return new Promise((resolve, reject) => {
    const headers = {};
    if (cookie) headers.cookie = cookie;
    if (now !== undefined && now !== null) headers['x-fake-now'] = String(now);
    const req = http.get({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode, setCookie: res.headers['set-cookie'] || [], body }),
      );
    });
    req.on('error', reject);
  });
}

const settle = () => new Promise((resolve) => setImmediate(() => setImmediate(resolve)));

const server = app.listen(0, '127.0.0.1', async () => {
  const { port } = server.address();
  const results = [];
  const jar = new Map();
  try {
    for (const spec of scenario.requests) {
      events = [];
      storeSets = [];
      const cookie =
        spec.cookie === '$jar' ? [...jar].map(([name, value]) => `${name}=${value}`).join('; ') : spec.cookie;
      const response = await request(port, { ...spec, cookie });
      for (const line of response.setCookie) {
        const [name, value] = line.split(';', 1)[0].split(/=(.*)/s);
        if (value) jar.set(name, value);
        else jar.delete(name);
      }
      await settle(); // koa-session emits its events with setImmediate
      let body = response.body;
      try {
        body = JSON.parse(body);
      } catch {}
      results.push({ ...response, body, events, storeSets });
    }
    process.stdout.write(JSON.stringify(results) + '\n');
  } finally {
    server.close();
  }
});
