-- name: audit_list
-- Audit events newest first, every filter optional; keyset pagination on id.
SELECT * FROM audit_event
WHERE (CAST(:action AS text) IS NULL OR action = CAST(:action AS text))
  AND (CAST(:actor AS text) IS NULL OR actor = CAST(:actor AS text))
  AND (CAST(:since AS timestamptz) IS NULL OR at >= CAST(:since AS timestamptz))
  AND (CAST(:until AS timestamptz) IS NULL OR at < CAST(:until AS timestamptz))
  AND (CAST(:before_id AS bigint) IS NULL OR id < CAST(:before_id AS bigint))
ORDER BY id DESC
LIMIT :limit;

-- name: audit_record
-- One admin action.
INSERT INTO audit_event (actor, action, target, filter, count, request_id)
VALUES (:actor, :action, :target, CAST(:filter AS jsonb), :count, :request_id);
