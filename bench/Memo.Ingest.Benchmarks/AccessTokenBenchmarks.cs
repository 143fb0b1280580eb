using BenchmarkDotNet.Attributes;
using Memo.Ingest.Auth;
using Memo.Ingest.Configuration;

namespace Memo.Ingest.Benchmarks;

/// <summary>
/// What a read request (a sync page, a stream connection) pays to check its bearer token: a full JWT validation (HMAC,
/// JSON, one claim per account, the grant's account set) against the grant kept from the token's last validation
/// (<see cref="ValidatedTokens"/>). A token of one account, and one of 1,000 (a platform's backend following all of
/// its numbers with one token).
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class AccessTokenBenchmarks
{
    private static readonly AuthOptions Options = new() { SigningKeys = ["a-signing-key-of-at-least-thirty-two-bytes"] };
    private readonly AccessTokens _validating = new(Options, validatedTokenCharacters: 0);
    private readonly AccessTokens _keeping = new(Options);
    private string _token = "";

    [Params(1, 1000)]
    public int Accounts { get; set; } = 1;

    [GlobalSetup]
    public void Setup()
    {
        _token = _validating.Mint("client", [.. Enumerable.Range(0, Accounts).Select(static i => $"1065{i:D11}")], TimeSpan.FromHours(24));
        _ = _keeping.ValidateAsync(_token).AsTask().GetAwaiter().GetResult();
    }

    [Benchmark(Baseline = true, Description = "validate the JWT on every request")]
    public bool Validate() => _validating.ValidateAsync(_token).AsTask().GetAwaiter().GetResult() is not null;

    [Benchmark(Description = "grant kept from the token's last validation")]
    public bool Kept() => _keeping.ValidateAsync(_token).AsTask().GetAwaiter().GetResult() is not null;
}
