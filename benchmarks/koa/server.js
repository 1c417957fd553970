'use strict';

// The Node side of `make bench`: Koa answering a counter, with (MODE=session) or without
// (MODE=bare) koa-session 7 in cookie mode (koa's default sha1 keygrip signatures).
// Listens on 127.0.0.1:$PORT and prints "ready" once listening.

const Koa = require('koa');
const sessionModule = require('koa-session');

const createSession = sessionModule.createSession || sessionModule.default || sessionModule;
const mode = process.env.MODE || 'bare';
const port = Number.parseInt(process.env.PORT || '3000', 10);

const app = new Koa();
app.keys = [process.env.KEY || 'I1cqobbcERqZlXvRYLhB82BbjJ7sjJtktOu_Skgzmw8'];

if (mode === 'session') {
  app.use(createSession({ key: 'koa.sess', maxAge: 86400000 }, app));
  app.use((ctx) => {
    const n = (ctx.session.views || 0) + 1;
    ctx.session.views = n;
    ctx.body = `${n} views`;
  });
} else {
  app.use((ctx) => {
    ctx.body = '1 views';
  });
}

app.listen(port, '127.0.0.1', () => {
  console.log(`ready ${port}`);
});
