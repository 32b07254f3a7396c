// Probot verifying and dispatching webhooks to an empty issues.labeled handler, as the peer
// in bench/intake.py. Usage: PORT=… WEBHOOK_SECRET=… PRIVATE_KEY=… node server.js
import { createServer } from "node:http";
import { createNodeMiddleware, createProbot } from "probot";

const probot = createProbot({ overrides: { appId: 1, logLevel: "fatal" } });
const middleware = await createNodeMiddleware(
  (app) => {
    app.on("issues.labeled", async () => {});
  },
  { probot, webhooksPath: "/api/github/webhooks" },
);
createServer((req, res) => {
  middleware(req, res, () => res.writeHead(404).end());
}).listen(Number(process.env.PORT), "127.0.0.1");
