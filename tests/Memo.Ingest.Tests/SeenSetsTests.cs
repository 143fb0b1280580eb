using System.Buffers;
using System.Text;
using Memo.Ingest.Redis;
using Memo.Ingest.TestSupport;
using Memo.Ingest.Webhooks;
using Memo.Ingest.Webhooks.Parsing;
using StackExchange.Redis;
using Xunit;

namespace Memo.Ingest.Tests;

/// <summary>How a batch's ids are laid out for Redis: a set per second of their timestamps (docs/DECISIONS.md 39).</summary>
public sealed class SeenSetsTests
{
    [Fact]
    public void Arguments_GroupIdsByTheSecondOfTheirTimestamps_WhateverTheirOrder_AndKeepEachIdsPosition()
    {
        List<ParsedWebhook> batch =
        [
            Parse(WebhookPayloads.Envelope("PNa",
                messages: [WebhookPayloads.TextMessage("wamid.1", "49", 1700000002, "x"), WebhookPayloads.TextMessage("wamid.2", "49", 1700000001, "y")],
                statuses: [WebhookPayloads.Status("wamid.out", "delivered", 1700000002, "49")])),
            Parse(WebhookPayloads.Envelope("PNb", messages: [WebhookPayloads.TextMessage("wamid.3", "49", 1700000001, "z")])),
        ];
        SeenSets.Position[] positions = [.. Positions(batch)];

        RedisValue[] arguments = SeenSets.Arguments(batch, positions, "memo:"u8, "db1:"u8, 691200, out RedisKey[] sets);

        Assert.Equal(["memo:db1:seen:1700000001", "memo:db1:seen:1700000002"], sets.Select(static s => (string)s!));
        // The TTL, then per set its member count and members, in the order of the sorted positions.
        string[] members = [.. arguments.Select(static a => (string)a!)];
        Assert.Equal("691200", members[0]);
        Assert.Equal("2", members[1]);
        Assert.Equal(["m:PNa:wamid.2", "m:PNb:wamid.3"], members[2..4].Order());
        Assert.Equal("2", members[4]);
        Assert.Equal(["m:PNa:wamid.1", "s:PNa:wamid.out:delivered"], members[5..7].Order());
        Assert.Equal(7, members.Length);
        // A screen's answers come back in the positions' order: each position names the record of its member.
        string[] named = [.. positions.Select(p => Member(batch, p))];
        Assert.Equal([.. members[2..4], .. members[5..7]], named);
    }

    [Fact]
    public void Arguments_WithoutALeadingValue_StartWithTheFirstSetsCount()
    {
        List<ParsedWebhook> batch = [Parse(WebhookPayloads.Envelope("PNa", messages: [WebhookPayloads.TextMessage("wamid.1", "49", 1700000000, "x")]))];

        RedisValue[] arguments = SeenSets.Arguments(batch, [.. Positions(batch)], "memo:"u8, "db1:"u8, RedisValue.Null, out RedisKey[] sets);

        Assert.Equal(["1", "m:PNa:wamid.1"], arguments.Select(static a => (string)a!));
        Assert.Single(sets);
    }

    private static IEnumerable<SeenSets.Position> Positions(List<ParsedWebhook> batch)
    {
        for (int w = 0; w < batch.Count; w++)
        {
            for (int r = 0; r < batch[w].Count; r++)
            {
                if (batch[w][r].Kind is RecordKind.Message or RecordKind.Status)
                {
                    yield return new SeenSets.Position(batch[w][r].Timestamp, w, r);
                }
            }
        }
    }

    private static string Member(List<ParsedWebhook> batch, SeenSets.Position position)
    {
        ParsedWebhook webhook = batch[position.Webhook];
        StagedRecord record = webhook[position.Record];
        string account = Encoding.UTF8.GetString(webhook.Arena[record.Account]);
        string id = Encoding.UTF8.GetString(webhook.Arena[record.Id]);
        return record.Kind == RecordKind.Message ? $"m:{account}:{id}" : $"s:{account}:{id}:{Encoding.UTF8.GetString(webhook.Arena[record.Type])}";
    }

    private static ParsedWebhook Parse(string body)
    {
        var webhook = new ParsedWebhook();
        Assert.Equal(WebhookRejectionReason.None, WebhookPayloadReader.Parse(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(body)), webhook));
        return webhook;
    }
}
