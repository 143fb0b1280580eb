using System.Buffers;
using System.Text;
using Memo.Ingest.Ingest;
using Memo.Ingest.TestSupport;
using Memo.Ingest.Webhooks;
using Memo.Ingest.Webhooks.Parsing;
using Xunit;

namespace Memo.Ingest.Tests;

/// <summary>When an unchanged contact profile may be left out of the inbox, and when it must not.</summary>
public sealed class RecentContactProfilesTests
{
    private const long Now = 10_000_000;

    [Fact]
    public void SameProfile_IsSkipped_WithinTheMemory_AndAppendedAgainAfterIt()
    {
        var profiles = new RecentContactProfiles(memorySeconds: 60);
        profiles.NoteAppended(Parse("Ann", "wamid.1"), Now);

        Assert.True(SkipsProfile(profiles, Parse("Ann", "wamid.2"), Now + 30_000));
        Assert.False(SkipsProfile(profiles, Parse("Ann", "wamid.3"), Now + 70_000));
    }

    [Fact]
    public void ChangedName_OtherContact_OrOtherAccount_IsNeverSkipped()
    {
        var profiles = new RecentContactProfiles(memorySeconds: 60);
        profiles.NoteAppended(Parse("Ann", "wamid.1"), Now);

        Assert.False(SkipsProfile(profiles, Parse("Anna", "wamid.2"), Now));
        Assert.False(SkipsProfile(profiles, Parse("Ann", "wamid.3", sender: "4917000999"), Now));
        Assert.False(SkipsProfile(profiles, Parse("Ann", "wamid.4", account: "PNother"), Now));
    }

    [Fact]
    public void NameChangedBack_IsAppended_BecauseTheSlotHoldsTheLastProfile()
    {
        var profiles = new RecentContactProfiles(memorySeconds: 60);
        profiles.NoteAppended(Parse("Ann", "wamid.1"), Now);
        profiles.NoteAppended(Parse("Bea", "wamid.2"), Now + 1_000);

        Assert.False(SkipsProfile(profiles, Parse("Ann", "wamid.3"), Now + 2_000));
        Assert.True(SkipsProfile(profiles, Parse("Bea", "wamid.4"), Now + 2_000));
    }

    [Fact]
    public void SkippedProfile_DoesNotExtendTheMemory()
    {
        var profiles = new RecentContactProfiles(memorySeconds: 60);
        profiles.NoteAppended(Parse("Ann", "wamid.1"), Now);
        ParsedWebhook skipped = Parse("Ann", "wamid.2");
        Assert.True(SkipsProfile(profiles, skipped, Now + 50_000));
        profiles.NoteAppended(skipped, Now + 50_000);

        Assert.False(SkipsProfile(profiles, Parse("Ann", "wamid.3"), Now + 70_000));
    }

    [Fact]
    public void ProfileAlone_OrWithScreenedRecordsOnly_IsAppended()
    {
        var profiles = new RecentContactProfiles(memorySeconds: 60);
        profiles.NoteAppended(Parse("Ann", "wamid.1"), Now);

        // The webhook's other records carry the account's metadata; a profile that is all there is, is kept.
        ParsedWebhook retry = Parse("Ann", "wamid.2");
        for (int i = 0; i < retry.Count; i++)
        {
            retry[i].Screened = retry[i].Kind != RecordKind.Contact;
        }

        Assert.False(SkipsProfile(profiles, retry, Now));
    }

    [Fact]
    public void ZeroMemory_SkipsNothing()
    {
        var profiles = new RecentContactProfiles(memorySeconds: 0);
        profiles.NoteAppended(Parse("Ann", "wamid.1"), Now);

        Assert.False(SkipsProfile(profiles, Parse("Ann", "wamid.2"), Now));
    }

    private static bool SkipsProfile(RecentContactProfiles profiles, ParsedWebhook webhook, long now)
    {
        int skipped = profiles.SkipUnchanged([webhook], now);
        bool screened = false;
        for (int i = 0; i < webhook.Count; i++)
        {
            screened |= webhook[i].Kind == RecordKind.Contact && webhook[i].Screened;
        }

        Assert.Equal(screened ? 1 : 0, skipped);
        return screened;
    }

    private static ParsedWebhook Parse(string name, string wamid, string sender = "4917000111", string account = "PNprofiles")
    {
        string body = WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage(wamid, sender, 1700000000, "hi")],
            contacts: [WebhookPayloads.Contact(sender, name)]);
        var webhook = new ParsedWebhook();
        Assert.Equal(WebhookRejectionReason.None, WebhookPayloadReader.Parse(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(body)), webhook));
        return webhook;
    }
}
