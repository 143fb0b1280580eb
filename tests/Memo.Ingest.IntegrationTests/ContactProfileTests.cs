using System.Net;
using System.Text.Json;
using Memo.Ingest.TestSupport;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// The sender's profile that Meta repeats with every message is appended once while it does not change
/// (Ingest.RecentContactProfiles), and every change is still stored, including a name changed back.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ContactProfileTests(PostgresFixture postgres)
{
    private const string Account = "PNprofiles";
    private const string Sender = "4917000111";

    [Fact]
    public async Task UnchangedProfile_IsAppendedOnce_AndEveryChangeIsStored()
    {
        string database = await postgres.Server.CreateDatabaseAsync("profiles");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database);

        // Inbox records appended per webhook of one message and its sender's profile: 2 when the profile goes with it.
        Assert.Equal(2, await PostAsync(gateway, database, 1, "Ann"));
        Assert.Equal(1, await PostAsync(gateway, database, 2, "Ann"));
        Assert.Equal(1, await PostAsync(gateway, database, 3, "Ann"));
        Assert.Equal("Ann", await StoredNameAsync(database));

        Assert.Equal(2, await PostAsync(gateway, database, 4, "Bea"));
        Assert.Equal("Bea", await StoredNameAsync(database));
        Assert.Equal(1, await PostAsync(gateway, database, 5, "Bea"));

        // Back to the first name: the memory holds the last profile of the contact, so this is a change too.
        Assert.Equal(2, await PostAsync(gateway, database, 6, "Ann"));
        Assert.Equal("Ann", await StoredNameAsync(database));

        Assert.Equal(6, await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE account = $1", Account));
        JsonElement conversation = Assert.Single(await SyncClient.GetAllAsync(gateway.Client, Account, "conversations"));
        Assert.Equal(6, conversation.GetProperty("message_count").GetInt64());
        Assert.Equal("Ann", conversation.GetProperty("profile_name").GetString());
        // Three contact events: Ann, Bea, Ann.
        Assert.Equal(3, await Database.CountAsync(database, "SELECT count(*) FROM account_events WHERE account = $1 AND kind = 3", Account));
        Assert.Equal("", await Database.SequencedTwiceAsync(database));
    }

    [Fact]
    public async Task WithoutMemory_EveryProfileIsAppended()
    {
        string database = await postgres.Server.CreateDatabaseAsync("profiles_off");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database, "--Memo:Ingest:ContactProfileMemorySeconds=0");

        Assert.Equal(2, await PostAsync(gateway, database, 1, "Ann"));
        Assert.Equal(2, await PostAsync(gateway, database, 2, "Ann"));
        Assert.Equal("Ann", await StoredNameAsync(database));
        Assert.Equal(1, await Database.CountAsync(database, "SELECT count(*) FROM account_events WHERE account = $1 AND kind = 3", Account));
    }

    /// <summary>Posts message <paramref name="n"/> with the sender's profile and returns how many inbox records it appended.</summary>
    private static async Task<long> PostAsync(GatewayHost gateway, string database, int n, string name)
    {
        const string lastId = "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM inbox_id_seq";
        long before = await Database.CountAsync(database, lastId);
        string body = WebhookPayloads.Envelope(Account, messages: [WebhookPayloads.TextMessage($"wamid.profile.{n}", Sender, 1700000000 + n, $"m{n}")],
            contacts: [WebhookPayloads.Contact(Sender, name)]);
        using HttpResponseMessage response = await gateway.PostWebhookAsync(body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        long appended = await Database.CountAsync(database, lastId) - before;
        await SequencedWait.UntilSequencedAsync(database);
        return appended;
    }

    private static Task<string> StoredNameAsync(string database) =>
        Database.TextAsync(database, $"SELECT profile_name FROM contacts WHERE account = '{Account}' AND wa_id = '{Sender}'");
}
