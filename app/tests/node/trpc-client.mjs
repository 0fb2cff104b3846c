// The original's web client, @trpc/client 11 with httpBatchLink, calling the
// Python API with an Auth.js session cookie. Prints one JSON line:
//   {"created": outcome, "batch": [outcome, ...]}, outcome = {data} | {error: {code, httpStatus, message}}
//   TRPC_URL=http://127.0.0.1:PORT/trpc COOKIE='authjs.session-token=...' OTHER_WIDGET=<uuid> node trpc-client.mjs
import { createTRPCUntypedClient, httpBatchLink } from '@trpc/client';

const client = createTRPCUntypedClient({
  links: [httpBatchLink({ url: process.env.TRPC_URL, headers: () => ({ cookie: process.env.COOKIE || '' }) })],
});
const settle = (promise) =>
  promise.then(
    (data) => ({ data }),
    (e) => ({ error: { code: e.data?.code, httpStatus: e.data?.httpStatus, message: e.message } }),
  );

const created = await settle(
  client.mutation('widgets.create', { name: 'From tRPC client', domainWhitelist: ['https://client.example'] }),
);
// Issued in one tick: httpBatchLink sends them as one batched GET.
const batch = await Promise.all([
  settle(client.query('widgets.list', { limit: 5 })),
  settle(client.query('users.list', {})),
  settle(client.query('widgets.get', { id: process.env.OTHER_WIDGET })),
  settle(client.query('health.liveness')),
]);
console.log(JSON.stringify({ created, batch }));
