namespace Memo.Ingest.Load;

internal sealed record StormSettings(int Seconds = 10, int Rounds = 3, double DuplicateRatio = 0.9, int Concurrency = 32, int StoredMessages = 2000);
