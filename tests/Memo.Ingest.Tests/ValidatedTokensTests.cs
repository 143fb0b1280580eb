using Memo.Ingest.Auth;
using Memo.Ingest.Configuration;
using Xunit;

namespace Memo.Ingest.Tests;

/// <summary>Validated tokens kept for their next request: shared grants, never past expiry, never unbounded.</summary>
public sealed class ValidatedTokensTests
{
    private static readonly AuthOptions Options = new() { SigningKeys = ["a-signing-key-of-at-least-thirty-two-bytes"] };

    [Fact]
    public async Task ATokenUsedAgain_GetsTheGrantOfItsFirstValidation()
    {
        var tokens = new AccessTokens(Options);
        string token = tokens.Mint("client", [.. Enumerable.Range(0, 1000).Select(static i => $"PN{i}")], TimeSpan.FromHours(1));

        AccessGrant? first = await tokens.ValidateAsync(token);
        AccessGrant? second = await tokens.ValidateAsync(token);

        Assert.NotNull(first);
        Assert.Same(first, second);
        Assert.True(second!.Allows("PN999", AccessScope.Read));
    }

    [Fact]
    public async Task AnAlteredToken_IsRefused_AfterTheTokenItCopiesWasKept()
    {
        var tokens = new AccessTokens(Options);
        string token = tokens.Mint("client", ["PN1"], TimeSpan.FromHours(1));
        Assert.NotNull(await tokens.ValidateAsync(token));

        string altered = token[..^2] + (token[^2] == 'A' ? "B" : "A") + token[^1];

        Assert.Null(await tokens.ValidateAsync(altered));
        Assert.Null(await tokens.ValidateAsync(token + "x"));
    }

    [Fact]
    public void AGrant_IsServedOnlyUntilItsTokenExpires()
    {
        var time = new ManualTime(DateTimeOffset.Parse("2026-12-03T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var validated = new ValidatedTokens(time, maxCharacters: 1000);
        var grant = new AccessGrant("client", ["PN1"], time.Now.AddMinutes(5));
        validated.Add("token", grant);

        Assert.True(validated.TryGet("token", out AccessGrant? kept));
        Assert.Same(grant, kept);

        time.Now = time.Now.AddMinutes(5);

        Assert.False(validated.TryGet("token", out _));
        Assert.Equal(0, validated.Count);
        validated.Add("expired", new AccessGrant("client", ["PN1"], time.Now));
        Assert.False(validated.TryGet("expired", out _));
    }

    [Fact]
    public void TheTokensKept_StayWithinTheBound()
    {
        var time = new ManualTime(DateTimeOffset.Parse("2026-12-03T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var validated = new ValidatedTokens(time, maxCharacters: 100);
        var grant = new AccessGrant("client", ["PN1"], time.Now.AddHours(1));
        for (int i = 0; i < 50; i++)
        {
            validated.Add($"token-{i:D4}", grant); // 10 characters each
            Assert.InRange(validated.Count, 1, 10);
        }

        Assert.True(validated.TryGet("token-0049", out _));
        validated.Add(new string('t', 101), grant);
        Assert.False(validated.TryGet(new string('t', 101), out _));
    }

    [Fact]
    public async Task WithoutRoom_EveryRequestIsValidated()
    {
        var tokens = new AccessTokens(Options, validatedTokenCharacters: 0);
        string token = tokens.Mint("client", ["PN1"], TimeSpan.FromHours(1));

        AccessGrant? first = await tokens.ValidateAsync(token);
        AccessGrant? second = await tokens.ValidateAsync(token);

        Assert.NotNull(first);
        Assert.NotNull(second);
        Assert.NotSame(first, second);
    }

    private sealed class ManualTime(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
