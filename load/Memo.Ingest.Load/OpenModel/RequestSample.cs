namespace Memo.Ingest.Load.OpenModel;

/// <summary>
/// One request of an open-model run. <see cref="LatencyMicroseconds"/> runs from the time the schedule intended to
/// send it, not from when it was sent, so time spent waiting for a connection or for a lagging dispatcher counts
/// (no coordinated omission).
/// </summary>
internal readonly record struct RequestSample(int Step, long IntendedMicroseconds, int LatencyMicroseconds, short Status, bool HasRetryAfter, int Messages);
