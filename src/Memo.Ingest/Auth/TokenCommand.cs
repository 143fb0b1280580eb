using System.Globalization;
using Memo.Ingest.Configuration;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;

namespace Memo.Ingest.Auth;

/// <summary>
/// <c>Memo.Ingest token --account PN1 [--account PN2 …] [--subject name] [--hours 24] [--scope read|send|"read send"]</c>:
/// prints a token (a read token unless <c>--scope</c> says otherwise) signed with the configured key (same configuration sources as the server: appsettings, Memo__Auth__SigningKeys__0, …).
/// <c>--account '*'</c> grants every account (for trusted back ends only).
/// </summary>
public static class TokenCommand
{
    public const string Name = "token";

    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        var accounts = new List<string>();
        string subject = "local";
        double hours = 24;
        AccessScope scope = AccessScope.Read;
        var rest = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--account" when i + 1 < args.Length: accounts.Add(args[++i]); break;
                case "--subject" when i + 1 < args.Length: subject = args[++i]; break;
                case "--scope" when i + 1 < args.Length: scope = AccessScopes.Parse(args[++i]); break;
                case "--hours" when i + 1 < args.Length && double.TryParse(args[i + 1], NumberStyles.Float, CultureInfo.InvariantCulture, out hours) && hours > 0: i++; break;
                default: rest.Add(args[i]); break;
            }
        }

        if (accounts.Count == 0 || scope == AccessScope.None)
        {
            error.WriteLine("usage: Memo.Ingest token --account PHONE_NUMBER_ID [--account …] [--subject NAME] [--hours 24] [--scope read|send|\"read send\"]");
            return 2;
        }

        IConfiguration configuration = WebApplication.CreateSlimBuilder([.. rest]).Configuration;
        AuthOptions options = configuration.GetSection(AuthOptions.Section).Get<AuthOptions>() ?? new AuthOptions();
        try
        {
            output.WriteLine(new AccessTokens(options).Mint(subject, accounts, TimeSpan.FromHours(hours), scope));
            return 0;
        }
        catch (InvalidOperationException e)
        {
            error.WriteLine(e.Message);
            return 1;
        }
    }
}
