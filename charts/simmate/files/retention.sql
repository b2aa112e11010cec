-- Prefect Server v1 retention: delete flow runs not touched for :days days, with their task runs,
-- states and logs, a batch at a time. Run by the chart's retention CronJob as
--     psql -v ON_ERROR_STOP=1 -v days=30 -v batch_size=1000 -f retention.sql
-- and, unchanged, by tests/chart/test_retention.py on a real PostgreSQL.
--
-- "Old" = flow_run.updated and flow_run.scheduled_start_time both before the cutoff: a run that
-- still heartbeats or changes state is updated by Prefect's trigger and is kept, and so is a run
-- scheduled for later. Children are deleted before their parents in chunks of :batch_size rows,
-- one transaction each, so no statement has to cascade over a huge mapped flow run and locks stay
-- short. Prefect's `log` table has no primary key, hence the ctid chunks.
\set ON_ERROR_STOP on
SET simmate.retention_days = :'days';
SET simmate.retention_batch_size = :'batch_size';

DO $retention$
DECLARE
    keep_days integer := current_setting('simmate.retention_days')::integer;
    chunk integer := current_setting('simmate.retention_batch_size')::integer;
    cutoff timestamptz;
    run_ids uuid[];
    statement text;
    deleted bigint;
    runs bigint := 0;
    batches integer := 0;
BEGIN
    IF keep_days < 1 OR chunk < 1 THEN
        RAISE EXCEPTION 'retention: days and batch_size must be at least 1 (got %, %)',
            keep_days, chunk;
    END IF;
    cutoff := now() - make_interval(days => keep_days);
    LOOP
        SELECT array_agg(id) INTO run_ids FROM (
            SELECT id FROM flow_run
            WHERE updated < cutoff AND scheduled_start_time < cutoff
            ORDER BY updated
            LIMIT chunk
        ) AS old_runs;
        EXIT WHEN run_ids IS NULL;
        FOREACH statement IN ARRAY ARRAY[
            'DELETE FROM log WHERE ctid = ANY (ARRAY(
                 SELECT ctid FROM log WHERE flow_run_id = ANY ($1) LIMIT $2))',
            'DELETE FROM task_run_state WHERE id IN (
                 SELECT s.id FROM task_run_state s JOIN task_run t ON t.id = s.task_run_id
                 WHERE t.flow_run_id = ANY ($1) LIMIT $2)',
            'DELETE FROM task_run WHERE id IN (
                 SELECT id FROM task_run WHERE flow_run_id = ANY ($1) LIMIT $2)',
            'DELETE FROM flow_run_state WHERE id IN (
                 SELECT id FROM flow_run_state WHERE flow_run_id = ANY ($1) LIMIT $2)'
        ] LOOP
            LOOP
                EXECUTE statement USING run_ids, chunk;
                GET DIAGNOSTICS deleted = ROW_COUNT;
                COMMIT;
                EXIT WHEN deleted < chunk;
            END LOOP;
        END LOOP;
        DELETE FROM flow_run WHERE id = ANY (run_ids);
        GET DIAGNOSTICS deleted = ROW_COUNT;
        COMMIT;
        runs := runs + deleted;
        batches := batches + 1;
        RAISE NOTICE 'retention: batch % deleted % flow run(s)', batches, deleted;
    END LOOP;
    -- Logs that belong to no flow run (none are expected from Prefect Server v1) age by timestamp.
    LOOP
        DELETE FROM log WHERE ctid = ANY (ARRAY(
            SELECT ctid FROM log WHERE flow_run_id IS NULL AND "timestamp" < cutoff LIMIT chunk));
        GET DIAGNOSTICS deleted = ROW_COUNT;
        COMMIT;
        EXIT WHEN deleted < chunk;
    END LOOP;
    RAISE NOTICE 'retention: deleted % flow run(s) not updated since %', runs, cutoff;
END
$retention$;
