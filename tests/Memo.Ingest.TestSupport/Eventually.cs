using System.Diagnostics;

namespace Memo.Ingest.TestSupport;

/// <summary>Polls a condition that another thread or process makes true; fails with a message after a bound.</summary>
public static class Eventually
{
    public static Task TrueAsync(Func<bool> condition, string what, int seconds = 30) =>
        TrueAsync(() => Task.FromResult(condition()), what, seconds);

    public static async Task TrueAsync(Func<Task<bool>> condition, string what, int seconds = 30)
    {
        var elapsed = Stopwatch.StartNew();
        while (!await condition())
        {
            if (elapsed.Elapsed > TimeSpan.FromSeconds(seconds))
            {
                throw new TimeoutException($"Not true within {seconds} s: {what}");
            }

            await Task.Delay(20);
        }
    }
}
