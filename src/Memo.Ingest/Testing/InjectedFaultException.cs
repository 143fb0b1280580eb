namespace Memo.Ingest.Testing;

/// <summary>Thrown by an armed <see cref="FaultInjector"/> point.</summary>
internal sealed class InjectedFaultException(string point) : Exception($"Injected fault at {point}.");
