#!/bin/sh
# scale.sh - the data of the browser test's scale checks (tests/browser.sh):
#   scale.sh dag       prints the DAG file "big": 1,000 tasks in 20 layers
#                      of 50, each task after two of the layer before
#   scale.sh runs DB   writes 100,000 finished runs of "big" into the
#                      project's database DB (made by the server), one a
#                      minute up to now, every tenth failed; the newest
#                      30 get their 1,000 task instances (30,000 rows;
#                      100,000 x 1,000 would be 100 million rows, and no
#                      page reads more than the newest runs' anyway)
# Rows go in with sqlite3 in one transaction: the runs are not real ones,
# but the API reads them as it reads the runner's.
set -eu

W=50    # tasks per layer
L=20    # layers
RUNS=100000
WITH_TASKS=30

case "${1:-}" in
dag)
	awk -v W="$W" -v L="$L" 'BEGIN {
		print "description: Scale test - 1,000 tasks in 20 layers of 50"
		print "schedule: null"
		print "tags: [scale]"
		print "tasks:"
		for (l = 0; l < L; l++)
			for (i = 0; i < W; i++) {
				printf "  - id: t%02d_%02d\n    command: \"true\"\n", l, i
				j = (i * 7 + 3) % W
				if (l > 0)
					printf "    upstream: [t%02d_%02d, t%02d_%02d]\n", l - 1, i, l - 1, j
			}
	}'
	;;
runs)
	db=$2
	command -v sqlite3 >/dev/null || { echo "scale.sh: sqlite3 not found" >&2; exit 1; }
	now=$(($(date +%s) * 1000))
	sqlite3 -bail -cmd '.timeout 20000' "$db" <<EOF
BEGIN IMMEDIATE;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $RUNS)
INSERT INTO runs(dag_id, run_id, state, run_type, conf, options, triggered_by,
                 queued_at, started_at, ended_at, logical_date)
SELECT 'big', printf('scale-%06d', i), CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'success' END,
       'manual', '{"n":' || i || '}', '{}', 'scale.sh',
       $now - ($RUNS + 1 - i) * 60000, $now - ($RUNS + 1 - i) * 60000 + 500,
       $now - ($RUNS + 1 - i) * 60000 + 500 + (i % 50) * 1000, $now - ($RUNS + 1 - i) * 60000
FROM n;
WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < $W * $L - 1)
INSERT INTO task_instances(run_pk, task_id, state, try_number, max_tries, pool, pool_slots,
                           started_at, ended_at, exit_code)
SELECT r.id, printf('t%02d_%02d', k.i / $W, k.i % $W),
       CASE WHEN r.state = 'failed' AND k.i = $W * $L - 1 THEN 'failed' ELSE 'success' END,
       1, 1, 'default_pool', 1,
       r.started_at + (k.i / $W) * 20, r.started_at + (k.i / $W) * 20 + 15,
       CASE WHEN r.state = 'failed' AND k.i = $W * $L - 1 THEN 1 ELSE 0 END
FROM runs r, k
WHERE r.dag_id = 'big' AND r.run_id > printf('scale-%06d', $RUNS - $WITH_TASKS);
COMMIT;
EOF
	;;
*)
	echo "usage: scale.sh dag | scale.sh runs DB" >&2
	exit 2
	;;
esac
