using System.Globalization;

namespace Memo.Ingest.Load.Faults;

/// <summary>What one fault phase did and what the checks after it found.</summary>
internal sealed record PhaseResult(
    string Phase,
    int Attempts,
    int Ok,
    int Unavailable,
    int ServerErrors,
    int NoResponse,
    int AcknowledgedMessages,
    long StoredMessages,
    int DuplicateDeliveries,
    double? RecoverySeconds,
    string RecoveryMeaning,
    IReadOnlyList<string> Violations)
{
    public const string Header =
        "| phase | HTTP attempts | 200 | 503 | 500 | no answer | messages acknowledged | stored (total) | duplicate deliveries (not stored again) | time to recover | checks |\n" +
        "|---|---|---|---|---|---|---|---|---|---|---|";

    public bool Passed => Violations.Count == 0;

    public string Row() => string.Create(CultureInfo.InvariantCulture,
        $"| {Phase} | {Attempts} | {Ok} | {Unavailable} | {ServerErrors} | {NoResponse} | {AcknowledgedMessages} | {StoredMessages} | {DuplicateDeliveries} | " +
        $"{(RecoverySeconds is double s ? $"{s:F1} s ({RecoveryMeaning})" : "–")} | {(Passed ? "pass" : "FAIL: " + string.Join("; ", Violations))} |");
}
