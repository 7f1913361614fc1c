"""Batch scoring (`modelfleet score`): rides from Postgres or a TLC parquet/CSV file, scored in
chunks through Triton, one transaction per chunk, resumable after a crash.

- ``settings``: ``ScoreSettings`` (env prefix ``SCORE_``);
- ``sources``: where rows come from (``FileSource``, ``RidesSource``) and the chunk plan;
- ``store``: the ``score_runs`` / ``score_results`` tables (run, checkpoint, chunk write);
- ``runner``: ``run_score`` (the job), ``TritonScorer``, the summary;
- ``progress``: the terminal progress bar (only on a TTY).
"""
