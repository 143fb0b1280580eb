using System.Text;

namespace Memo.Ingest.Load;

/// <summary>Writes a report to the console as it is produced and keeps a copy for the report file.</summary>
internal sealed class TeeWriter(TextWriter first, TextWriter second) : TextWriter
{
    public override Encoding Encoding => first.Encoding;

    public override void Write(char value)
    {
        first.Write(value);
        second.Write(value);
    }

    public override void Write(string? value)
    {
        first.Write(value);
        second.Write(value);
    }

    public override void WriteLine(string? value)
    {
        first.WriteLine(value);
        second.WriteLine(value);
    }

    public override async Task FlushAsync()
    {
        await first.FlushAsync();
        await second.FlushAsync();
    }
}
