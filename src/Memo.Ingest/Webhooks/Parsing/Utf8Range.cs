namespace Memo.Ingest.Webhooks.Parsing;

/// <summary>
/// A slice of a <see cref="Utf8Arena"/>: where one extracted value lives. <c>default</c> means JSON null / absent,
/// which is why the length is stored plus one.
/// </summary>
internal readonly struct Utf8Range
{
    private readonly int _lengthPlusOne;

    public Utf8Range(int start, int length)
    {
        Start = start;
        _lengthPlusOne = length + 1;
    }

    public int Start { get; }

    public int Length => _lengthPlusOne - 1;

    public bool IsNull => _lengthPlusOne == 0;
}
