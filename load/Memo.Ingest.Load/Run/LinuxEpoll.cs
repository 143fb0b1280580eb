using System.Runtime.InteropServices;

namespace Memo.Ingest.Load.Run;

/// <summary>
/// The few libc calls the subscriber fleet reads its sockets with: an epoll set per reader thread, each holding its
/// share of the streams, and a plain non-blocking <c>recv</c> per ready socket (<see cref="SubscriberFleet"/> says why). Linux only,
/// like the machine the load runs on.
/// </summary>
internal static partial class LinuxEpoll
{
    public const uint Readable = 0x001; // EPOLLIN

    private const int AddOperation = 1; // EPOLL_CTL_ADD
    private const int DeleteOperation = 2; // EPOLL_CTL_DEL
    private const int CloseOnExec = 0x80000; // EPOLL_CLOEXEC
    private const int DontWait = 0x40; // MSG_DONTWAIT
    private const int Interrupted = 4; // EINTR
    private const int WouldBlock = 11; // EAGAIN

    /// <summary><c>struct epoll_event</c>, which x86-64 packs to 12 bytes.</summary>
    [StructLayout(LayoutKind.Sequential, Pack = 4)]
    public struct Event
    {
        public uint Events;
        public ulong Data;
    }

    public static int Create() => Check(epoll_create1(CloseOnExec), "epoll_create1");

    public static void Add(int epoll, int socket, ulong data)
    {
        var registration = new Event { Events = Readable, Data = data };
        Check(epoll_ctl(epoll, AddOperation, socket, ref registration), "epoll_ctl");
    }

    /// <summary>Stops watching a socket (one that failed or ended: level-triggered, it would be reported ready forever).</summary>
    public static void Remove(int epoll, int socket)
    {
        var ignored = default(Event);
        _ = epoll_ctl(epoll, DeleteOperation, socket, ref ignored);
    }

    /// <summary>Ready sockets, at most <paramref name="ready"/>'s length; 0 on a timeout or an interrupted wait.</summary>
    public static int Wait(int epoll, Event[] ready, int timeoutMilliseconds)
    {
        int count = epoll_wait(epoll, ready, ready.Length, timeoutMilliseconds);
        return count >= 0 || Marshal.GetLastPInvokeError() == Interrupted ? Math.Max(count, 0) : Check(count, "epoll_wait");
    }

    /// <summary>Bytes read into <paramref name="into"/>; 0 when the peer closed; -1 when nothing was there after all.</summary>
    public static int Receive(int socket, Span<byte> into)
    {
        nint read = recv(socket, ref MemoryMarshal.GetReference(into), into.Length, DontWait);
        if (read >= 0)
        {
            return (int)read;
        }

        int error = Marshal.GetLastPInvokeError();
        return error is WouldBlock or Interrupted ? -1 : throw new IOException($"recv failed: errno {error}");
    }

    public static void Close(int epoll) => _ = close(epoll);

    private static int Check(int result, string call) =>
        result >= 0 ? result : throw new IOException($"{call} failed: errno {Marshal.GetLastPInvokeError()}");

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_create1(int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_ctl(int epoll, int operation, int socket, ref Event registration);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_wait(int epoll, [Out] Event[] ready, int capacity, int timeoutMilliseconds);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint recv(int socket, ref byte buffer, nint length, int flags);

    [LibraryImport("libc")]
    private static partial int close(int descriptor);
}
