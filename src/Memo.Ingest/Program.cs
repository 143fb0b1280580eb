// Memo.Ingest: WhatsApp Cloud API webhooks in, durable commit-ordered rows out. See README.md and docs/.
using Memo.Ingest;
using Memo.Ingest.Auth;
using Memo.Ingest.Health;

if (args is [TokenCommand.Name, .. var tokenArguments])
{
    return TokenCommand.Run(tokenArguments, Console.Out, Console.Error);
}

if (args is [ProbeCommand.Name, .. var probeArguments])
{
    return await ProbeCommand.RunAsync(probeArguments, Console.Error);
}

WebApplication app = GatewayApplication.Build(args);
await app.RunAsync();
return 0;
