#!/usr/bin/env bash
# What a sequencer round costs PostgreSQL alone, per statement (docs/DECISIONS.md 28): the general statement
# (SequencerSql.Drain), the plain one (SequencerSql.DrainPlain), and the plain one returning its events without their
# items (SequencerSql.DrainPlainEventsOnly, run when nobody can receive the round's events; what returning each event's
# item costs, issue 19), as the gateway prepares them (the writer session's settings, generic plans), on a schema made
# by the migrations. pgbench runs the scripts interleaved in one run, so all see the same moments of the machine: each
# script appends N inbound text messages, each after its sender's contact profile as Meta's webhooks carry them (20
# accounts, 1,000 contacts with fixed names), and runs its statement, which takes them. Prints each statement's average
# latency per round.
# MIX=statuses appends, instead of the profiles, a delivered and a read status for every fourth message, in the same
# round as their message. MIX=both runs every statement twice, after appending the messages with their senders' profiles
# and after appending the messages alone (named alone:…), interleaved: what the profile records cost a round.
# BASELINE=<git revision> also runs that revision's statements (named base:…), interleaved with
# today's in the same run, so that a change to SequencerSql.cs is measured against its past. ONLY=<name> runs one of the
# three (and its base), so that each gets more rounds in the same time. MERGED=1 also runs each statement in one
# transaction with its append (merged:…: BEGIN; append; statement; COMMIT) and prints, for every script, the append and
# the round together: what acknowledging and projecting in one transaction would cost (docs/PERFORMANCE.md, thirty-second
# session).
# The sessions take the writer sessions' settings from Storage/PostgresDataSource.cs (WriterSessionOptions);
# EXTRA_PGOPTIONS adds or overrides some (e.g. "-c work_mem=4MB", to measure a setting against the shipped one).
# Usage: [PORT=55438] [SECONDS_PER_SIZE=20] [MIX=profiles|statuses|both] [BASELINE=rev] [ONLY=Drain|DrainPlain|EventsOnly]
#        [MERGED=1] [EXTRA_PGOPTIONS=...] bench/sequencer-statements.sh [N ...]
#        (N: messages per round; default 1 20 200)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sizes=("$@"); [ $# -eq 0 ] && sizes=(1 20 200)
port=${PORT:-55438}
work=$(mktemp -d)
trap 'bash "$root/scripts/postgres-local.sh" stop "$work/pg" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
baseline=""
if [ -n "${BASELINE:-}" ]; then
  baseline="$work/baseline.cs"
  git -C "$root" show "$BASELINE:src/Memo.Ingest/Sequencing/SequencerSql.cs" > "$baseline"
fi
bash "$root/scripts/postgres-local.sh" start "$work/pg" "$port" >/dev/null
bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -n 1)")
sql() { PGOPTIONS="-c client_min_messages=warning" "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }
sql -c "CREATE DATABASE bench"
for migration in "$root"/src/Memo.Ingest/Storage/Migrations/*.sql; do sql -d bench -f "$migration" >/dev/null; done

# The statements as C# builds them (const strings whose {{Fragment}} holes name other consts), as pgbench scripts
# numbered in the order of the names written to $work/names.
python3 - "$root/src/Memo.Ingest/Sequencing/SequencerSql.cs" "$work" "${MIX:-profiles}" "$baseline" "${ONLY:-}" "${MERGED:-}" <<'PY'
import re, sys
out, mix, only, merged = sys.argv[2], sys.argv[3], sys.argv[5], sys.argv[6] == '1'
profiles = """INSERT INTO inbox (kind, account, display_phone, waba_id, msg_id, wa_id, contact, ts, type, body, payload)
SELECT k.kind, 'PNbench' || (g % 20), '15550001111', 'WABA1',
       CASE WHEN k.kind = 1 THEN 'wamid.HBgLMTU1NTAwMDAxMTEVAgASGBQ.' || gen_random_uuid() END, '4915' || (g % 1000),
       CASE WHEN k.kind = 1 THEN '4915' || (g % 1000) END, CASE WHEN k.kind = 1 THEN 1700000000 + g END,
       CASE WHEN k.kind = 1 THEN 'text' END,
       CASE WHEN k.kind = 1 THEN 'Hello, is this still available? I would like to order two.' ELSE 'Customer ' || (g % 1000) END,
       CASE WHEN k.kind = 1 THEN convert_to('{"from":"4915' || (g % 1000) || '","id":"wamid.HBgL' || g || '","timestamp":"1700000000","text":{"body":"' || repeat('x', 450) || '"},"type":"text"}', 'UTF8') END
FROM generate_series(1, :n) AS g, (VALUES (3), (1)) AS k(kind)
ORDER BY g, k.kind DESC;
"""
statuses = """WITH m AS (SELECT g, 'wamid.HBgLMTU1NTAwMDAxMTEVAgASGBQ.' || gen_random_uuid() AS wamid FROM generate_series(1, :n) AS g)
INSERT INTO inbox (kind, account, display_phone, waba_id, msg_id, wa_id, contact, ts, type, body, payload)
SELECT k.kind, 'PNbench' || (g % 20), '15550001111', 'WABA1', wamid, '4915' || (g % 1000),
       CASE WHEN k.kind = 1 THEN '4915' || (g % 1000) END, 1700000000 + g + k.step,
       CASE WHEN k.kind = 1 THEN 'text' WHEN k.step = 1 THEN 'delivered' ELSE 'read' END,
       CASE WHEN k.kind = 1 THEN 'Hello, is this still available? I would like to order two.' END,
       convert_to('{"from":"4915' || (g % 1000) || '","id":"wamid.HBgL' || g || '","timestamp":"1700000000","text":{"body":"' || repeat('x', 450) || '"},"type":"text"}', 'UTF8')
FROM m, (VALUES (1, 0), (2, 1), (2, 2)) AS k(kind, step)
WHERE k.kind = 1 OR g % 4 = 0
ORDER BY g, k.step;
"""
append = statuses if mix == 'statuses' else profiles
# The same messages without their profile records (MIX=both); fails loudly if the profiles' append changes shape.
alone = profiles.replace('(VALUES (3), (1))', '(VALUES (1))')
assert alone != profiles, 'the profiles append no longer lists its kinds as (VALUES (3), (1))'
names = []
for prefix, path in (('', sys.argv[1]), ('base:', sys.argv[4])):
    if not path:
        continue
    source = open(path).read()
    consts = {m[1]: m[2] for m in re.finditer(r'const string (\w+) = \$*"""\n(.*?)\n\s*""";', source, re.S)}
    expand = lambda name: re.sub(r'\{\{(\w+)\}\}', lambda m: expand(m[1]), consts[name])
    # EventsOnly is DrainPlain's rows without the item columns and the joins that fetch them (same writes, same events):
    # the statement of rounds whose events nobody can receive.
    for name, const in (('Drain', 'Drain'), ('DrainPlain', 'DrainPlain'), ('EventsOnly', 'DrainPlainEventsOnly')):
        if only and name != only:
            continue
        text = '\n'.join(line.split('--')[0].rstrip() for line in expand(const).split('\n'))
        text = text.replace('$1', ':shards').replace('$2', ':live').replace('$3', ':hist')
        open(f'{out}/{len(names) + 1}.sql', 'w').write(append + text.strip() + ';\n')
        names.append(prefix + name)
        if mix == 'both':
            open(f'{out}/{len(names) + 1}.sql', 'w').write(alone + text.strip() + ';\n')
            names.append('alone:' + prefix + name)
        if merged:
            open(f'{out}/{len(names) + 1}.sql', 'w').write('BEGIN;\n' + append + text.strip() + ';\nCOMMIT;\n')
            names.append('merged:' + prefix + name)
open(f'{out}/names', 'w').write(' '.join(names))
PY
echo "VACUUM inbox;" > "$work/vacuum.sql"

shards="{$(seq -s, 0 63)}"
# The C# constant is two concatenated verbatim/regular string literals; their contents joined are the options.
writer_options=$(python3 - "$root/src/Memo.Ingest/Storage/PostgresDataSource.cs" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
body = re.search(r'WriterSessionOptions\s*=\s*(.*?);', text, re.S).group(1)
print(''.join(re.findall(r'@?"((?:[^"\\]|\\.)*)"', body)).strip())
PY
)
scripts=()
for i in $(seq 1 "$(wc -w < "$work/names")"); do scripts+=(-f "$work/$i.sql@20"); done
for n in "${sizes[@]}"; do
  PGOPTIONS="$writer_options ${EXTRA_PGOPTIONS:-}" \
    "$bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -M prepared -T "${SECONDS_PER_SIZE:-20}" -c 1 -r -D shards="$shards" -D live=100000 -D hist=0 -D n="$n" \
      "${scripts[@]}" -f "$work/vacuum.sql@1" bench 2>&1 \
    | awk -v n="$n" -v merged="${MERGED:-}" -v names="$(cat "$work/names")" 'BEGIN { split(names, name) }
                     /^SQL script [0-9]+:/ { script = $3 + 0 }
                     script && /^ +[0-9.]+ +[0-9]+ / { whole[script] += $1 }
                     /WITH (taken|barrier) AS/ && script { printf "%d messages per round: %-15s %8.3f ms per round\n", n, name[script], $1 }
                     END { if (merged) for (i = 1; i in name; i++) printf "%d messages per round: %-15s %8.3f ms append and round\n", n, name[i], whole[i] }'
done
