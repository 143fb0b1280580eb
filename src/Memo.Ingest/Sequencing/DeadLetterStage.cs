namespace Memo.Ingest.Sequencing;

/// <summary>Where PostgreSQL refused data that was then kept in <c>dead_letters</c> (a metric label).</summary>
internal enum DeadLetterStage
{
    /// <summary>The acknowledgement's COPY refused a webhook: its whole signed body is kept.</summary>
    Ack,

    /// <summary>The sequencer refused one acknowledged record: the record is kept.</summary>
    Sequencer,
}
