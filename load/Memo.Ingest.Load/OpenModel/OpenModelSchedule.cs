using System.Diagnostics;

namespace Memo.Ingest.Load.OpenModel;

/// <summary>The schedule both open-model senders keep: requests numbered across the steps, each due at its step's start plus its share of the step's rate.</summary>
internal static class OpenModelSchedule
{
    /// <summary>
    /// Runs the steps back to back on <paramref name="clock"/>, awaiting <paramref name="onStep"/> before each, and hands
    /// every request to <paramref name="start"/> (index, step, intended start) when it is due, whether or not earlier ones
    /// have been answered. Waits shorter than a millisecond are not slept: the timer would overshoot them.
    /// </summary>
    public static async Task DispatchAsync(IReadOnlyList<LoadStep> steps, Stopwatch clock, Func<int, LoadStep, Task>? onStep,
        Action<long, int, TimeSpan> start)
    {
        long index = 0;
        for (int step = 0; step < steps.Count; step++)
        {
            LoadStep current = steps[step];
            if (onStep is not null)
            {
                await onStep(step, current);
            }

            TimeSpan stepStart = clock.Elapsed;
            for (long k = 0; k < current.Requests; k++, index++)
            {
                TimeSpan intended = stepStart + TimeSpan.FromSeconds(k / current.Rate);
                TimeSpan ahead = intended - clock.Elapsed;
                if (ahead > TimeSpan.FromMilliseconds(1))
                {
                    await Task.Delay(ahead);
                }

                start(index, step, intended);
            }
        }
    }
}
