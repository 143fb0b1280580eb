using System.Runtime.CompilerServices;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// The test process's thread pool starts with room for the test platform's own blocking threads.
/// </summary>
/// <remarks>
/// vstest's message loop (a synchronous <c>Socket.Poll</c>) and xunit's assembly runner (a blocking wait) each hold a
/// pool thread for the whole run. On a 2-core machine the pool's minimum is 2, so those two are all the threads it
/// starts without delay: once idle threads have retired, work that arrives waits for the pool's starvation injection.
/// A monitor queuing a work item every 50 ms during a full run saw it wait 0.5-1.7 s 21 times, and not once over
/// 200 ms with this minimum (twenty-sixth session, docs/DECISIONS.md 38): the pauses that split BackpressureTests'
/// overload episode and bunched OutboxTests' sends. The gateway blocks no pool thread: this is the test host's condition.
/// </remarks>
internal static class TestProcessThreadPool
{
    [ModuleInitializer]
    internal static void LeaveRoomForTheTestPlatform()
    {
        ThreadPool.GetMinThreads(out int workers, out int completionPorts);
        ThreadPool.SetMinThreads(Math.Max(workers, 32), completionPorts);
    }
}
