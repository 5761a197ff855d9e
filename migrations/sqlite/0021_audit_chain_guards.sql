-- The audit chain is append-only even for writers that go around leakguard:
--
-- REPLACE INTO audit_events swaps a row in by deleting the one it conflicts
-- with, and that delete fires no trigger unless the connection has turned
-- recursive_triggers on (leakguard's own connections do; another client's
-- need not). So the insert itself is refused when its place or its id is
-- taken, whatever the connection.
CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events
WHEN EXISTS (SELECT 1 FROM audit_events WHERE workspace_id = NEW.workspace_id AND seq = NEW.seq)
  OR EXISTS (SELECT 1 FROM audit_events WHERE id = NEW.id)
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;

-- The chain head only moves forward, and only to an event that is there:
-- setting it back (to hide removed events) or sideways (to a rewritten
-- event) is refused.
CREATE TRIGGER workspaces_audit_head_only_advances BEFORE UPDATE OF audit_seq, audit_head ON workspaces
WHEN NEW.audit_seq < OLD.audit_seq
  OR (NEW.audit_seq = OLD.audit_seq AND NEW.audit_head <> OLD.audit_head)
  OR (NEW.audit_seq > OLD.audit_seq AND NOT EXISTS (
        SELECT 1 FROM audit_events
        WHERE workspace_id = NEW.id AND seq = NEW.audit_seq AND hash = NEW.audit_head))
BEGIN SELECT RAISE(ABORT, 'the audit chain head only moves forward, to an event that exists'); END;
