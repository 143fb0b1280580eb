namespace Memo.Redis.Protocol;

/// <summary>The kind of a reply, by its RESP type prefix. RESP3 kinds only appear after <c>HELLO 3</c>.</summary>
public enum RespType : byte
{
    /// <summary><c>+</c> a status line such as <c>OK</c>.</summary>
    SimpleString,

    /// <summary><c>-</c> or RESP3 <c>!</c>: the server refused the command.</summary>
    Error,

    /// <summary><c>:</c></summary>
    Integer,

    /// <summary><c>$</c> binary-safe bytes; also RESP3 <c>=</c> verbatim strings and <c>(</c> big numbers.</summary>
    BulkString,

    /// <summary><c>*</c>; also RESP3 <c>~</c> sets, <c>%</c> maps (flattened key, value, ...) and <c>&gt;</c> pushes.</summary>
    Array,

    /// <summary><c>$-1</c>, <c>*-1</c> or RESP3 <c>_</c>.</summary>
    Null,

    /// <summary>RESP3 <c>,</c></summary>
    Double,

    /// <summary>RESP3 <c>#</c></summary>
    Boolean,
}
