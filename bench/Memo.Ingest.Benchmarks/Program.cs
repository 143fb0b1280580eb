using BenchmarkDotNet.Running;
using Memo.Ingest.Benchmarks;

BenchmarkSwitcher.FromAssembly(typeof(MetricsBenchmarks).Assembly).Run(args);
