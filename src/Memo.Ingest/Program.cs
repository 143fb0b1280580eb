// Memo.Ingest: WhatsApp Cloud API webhooks in, durable commit-ordered rows out. See README.md and docs/.
using Memo.Ingest;

WebApplication app = GatewayApplication.Build(args);
await app.RunAsync();
