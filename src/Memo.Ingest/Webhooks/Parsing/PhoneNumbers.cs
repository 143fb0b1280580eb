namespace Memo.Ingest.Webhooks.Parsing;

/// <summary>
/// The one form of a phone number that names a contact, whatever form a webhook used: echoes carry <c>to</c> as the
/// business typed it (<c>+55 11 98765-4321</c>), live messages the user's <c>wa_id</c>, and the two differ for the
/// same person in Brazil (with or without the 9th digit of mobiles) and Mexico (<c>521</c> or <c>52</c> before the
/// ten digits). Integrators that keyed contacts on the raw number created a second contact for each
/// (../shared/COEXISTENCE-FACTS.md). The raw number is always kept beside the normalised one.
/// </summary>
internal static class PhoneNumbers
{
    /// <summary>Longest number kept; E.164 allows 15 digits, the rest is room for odd input.</summary>
    public const int MaxDigits = 32;

    /// <summary>
    /// Writes the digits of <paramref name="raw"/> in their normal form: digits only; Brazil <c>55 DD 9 XXXXXXXX</c>
    /// without the 9 (<c>55 DD XXXXXXXX</c>); Mexico <c>521 + 10 digits</c> as <c>52 + 10 digits</c>. Returns the
    /// length written (0 when <paramref name="raw"/> has no digits).
    /// </summary>
    public static int Normalise(ReadOnlySpan<byte> raw, Span<byte> destination)
    {
        int length = 0;
        foreach (byte b in raw)
        {
            if (b is >= (byte)'0' and <= (byte)'9' && length < destination.Length)
            {
                destination[length++] = b;
            }
        }

        Span<byte> digits = destination[..length];
        if (length == 13 && digits.StartsWith("55"u8) && digits[4] == (byte)'9')
        {
            digits[5..].CopyTo(digits[4..]);
            return 12;
        }

        if (length == 13 && digits.StartsWith("521"u8))
        {
            digits[3..].CopyTo(digits[2..]);
            return 12;
        }

        return length;
    }

    /// <summary>The normal form of <paramref name="raw"/> as text (a reply's recipient); null when it has no digits.</summary>
    public static string? Normalise(string raw)
    {
        Span<byte> utf8 = stackalloc byte[MaxDigits * 4];
        int length = System.Text.Encoding.UTF8.GetBytes(raw.AsSpan(0, Math.Min(raw.Length, MaxDigits)), utf8);
        Span<byte> digits = stackalloc byte[MaxDigits];
        int written = Normalise(utf8[..length], digits);
        return written == 0 ? null : System.Text.Encoding.ASCII.GetString(digits[..written]);
    }

    /// <summary>Whether <paramref name="raw"/>, once normalised, is the already normalised <paramref name="normalised"/>.</summary>
    public static bool Matches(ReadOnlySpan<byte> raw, ReadOnlySpan<byte> normalised)
    {
        Span<byte> digits = stackalloc byte[MaxDigits];
        int length = Normalise(raw, digits);
        return length > 0 && digits[..length].SequenceEqual(normalised);
    }
}
