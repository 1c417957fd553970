'use strict';

// Reference Koa + koa-session 7 server for koasession's Python interop tests.
//
// Configuration (environment variables, or --name=value arguments that override them):
//   PORT          port to listen on, on 127.0.0.1 (default 3000; 0 picks a free one)
//   KEYS          comma-separated app keys, first signs (default "a,b")
//   ALGORITHM     keygrip HMAC: sha1 (koa default) or sha256 (default sha1)
//   MAX_AGE       milliseconds, or "session"; unset keeps koa-session's default
//   KEY           cookie name (default "koa.sess")
//   ROLLING, RENEW  "1"/"true" to enable
//   STORE         "redis" to keep sessions in Redis through koa-redis (default: cookie mode)
//   REDIS_URL     default redis://127.0.0.1:6379
//   SESSION_PREFIX  session-id prefix (koa-session's `prefix` option); the Redis key is the
//                   session id, prefix included, exactly as koa-session makes it
//
// Routes:
//   GET /health            "ok"
//   GET /set?name=value..  set session fields (string values) from the query
//   GET /setjson?data=JSON merge a JSON object into the session (typed values, order kept)
//   GET /get               {"session": ctx.session.toJSON() | null, "isNew", "maxAge", "externalKey"}
//   GET /clear             ctx.session = null
//   GET /flash/set?data=JSON  ctx.flash = the JSON value (koa-flash, mounted under /flash/ only)
//   GET /flash/get         {"flash": ctx.flash, "session": ctx.session.toJSON()}
//   GET /flash/redirect    a 302 that neither reads nor sets the flash (koa-flash keeps it)
//
// Test hook: a request header `x-fake-now: <ms since epoch>` pins Date.now() while the request
// (and koa-session's commit) runs, so `_expire` and `expires=` are reproducible.
//
// Prints "ready" on stdout once listening (the actual port is on the same line).

const Koa = require('koa');
const Keygrip = require('keygrip');
const sessionModule = require('koa-session');
const koaFlash = require('koa-flash');

const createSession = sessionModule.createSession || sessionModule.default || sessionModule;

function parseArgs(argv) {
  const out = {};
  for (const arg of argv) {
    const m = /^--([^=]+)=(.*)$/s.exec(arg);
    if (m) out[m[1].toUpperCase().replace(/-/g, '_')] = m[2];
  }
  return out;
}

const config = { ...process.env, ...parseArgs(process.argv.slice(2)) };
const truthy = (v) => v === '1' || v === 'true' || v === 'yes';

const port = Number.parseInt(config.PORT || '3000', 10);
const keys = (config.KEYS || 'a,b').split(',').filter((k) => k.length > 0);
const algorithm = (config.ALGORITHM || 'sha1').toLowerCase();
if (!['sha1', 'sha256'].includes(algorithm)) {
  console.error(`unsupported ALGORITHM ${algorithm}`);
  process.exit(2);
}

const app = new Koa();
app.keys = new Keygrip(keys, algorithm);
app.proxy = false;

const sessionOptions = {
  key: config.KEY || 'koa.sess',
  rolling: truthy(config.ROLLING),
  renew: truthy(config.RENEW),
};
if (config.MAX_AGE) {
  sessionOptions.maxAge = config.MAX_AGE === 'session' ? 'session' : Number(config.MAX_AGE);
}

let redisStore = null;
if ((config.STORE || '').toLowerCase() === 'redis') {
  const redisStoreFactory = require('koa-redis');
  redisStore = redisStoreFactory({ url: config.REDIS_URL || 'redis://127.0.0.1:6379' });
  sessionOptions.store = redisStore;
  if (config.SESSION_PREFIX) sessionOptions.prefix = config.SESSION_PREFIX;
} else if (config.STORE) {
  console.error(`unsupported STORE ${config.STORE}`);
  process.exit(2);
}

// Pin the clock for one request when asked to (registered before the session middleware, so
// koa-session's commit runs with the fake clock too).
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

// Report errors as JSON (after koa-session has seen them, before Koa's default handler).
app.use(async (ctx, next) => {
  try {
    await next();
  } catch (err) {
    ctx.status = err.status || 500;
    ctx.body = { error: String(err && err.message) };
    if (err && err.headers) ctx.set(err.headers);
  }
});

app.use(createSession(sessionOptions, app));

// koa-flash 1.0.0 is a Koa 1 generator middleware (`function *(next)`, `this` is the context),
// which Koa 2+ refuses. Run it the way Koa 1 did: drive the generator, awaiting what it yields,
// with downstream as a generator that yields the promise of next().
function fromGenerator(middleware) {
  return async (ctx, next) => {
    const downstream = (function* () {
      return yield next();
    })();
    const gen = middleware.call(ctx, downstream);
    let step = gen.next();
    while (!step.done) {
      let result;
      try {
        result = await step.value;
      } catch (err) {
        step = gen.throw(err);
        continue;
      }
      step = gen.next(result);
    }
    return step.value;
  };
}

// Only under /flash/, so the other routes keep plain koa-session behaviour.
const flash = fromGenerator(koaFlash());
app.use((ctx, next) => (ctx.path.startsWith('/flash/') ? flash(ctx, next) : next()));

function describe(ctx) {
  const sess = ctx.session;
  if (!sess) return { session: null, isNew: null, maxAge: null, externalKey: null };
  return {
    session: sess.toJSON(),
    isNew: Boolean(sess.isNew),
    maxAge: sess.maxAge === undefined ? null : sess.maxAge,
    externalKey: sess.externalKey === undefined ? null : sess.externalKey,
  };
}

app.use(async (ctx) => {
  switch (ctx.path) {
    case '/health':
      ctx.body = 'ok';
      return;
    case '/set':
      for (const [name, value] of Object.entries(ctx.query)) {
        ctx.session[name] = Array.isArray(value) ? value[value.length - 1] : value;
      }
      ctx.body = describe(ctx);
      return;
    case '/setjson': {
      const data = JSON.parse(ctx.query.data || '{}');
      for (const [name, value] of Object.entries(data)) ctx.session[name] = value;
      ctx.body = describe(ctx);
      return;
    }
    case '/get':
      ctx.body = describe(ctx);
      return;
    case '/clear':
      ctx.session = null;
      ctx.body = { session: null };
      return;
    case '/flash/set':
      ctx.flash = JSON.parse(ctx.query.data || 'null');
      ctx.body = describe(ctx);
      return;
    case '/flash/get':
      ctx.body = { flash: ctx.flash, session: ctx.session.toJSON() };
      return;
    case '/flash/redirect':
      ctx.redirect('/get');
      return;
    default:
      ctx.status = 404;
      ctx.body = { error: 'not found' };
  }
});

const server = app.listen(port, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`ready ${addr.port}\n`);
});

function shutdown() {
  server.close(() => {
    if (redisStore) redisStore.quit().finally(() => process.exit(0));
    else process.exit(0);
  });
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
