"""What an audit produces and where it lives: :class:`~miaudit.results.result.AuditResult`
(the summary, typed attack reports, per-record scores) and the run folder's files, written
atomically and read back by one reader (:mod:`~miaudit.results.folder`)."""
