-- The chain head only moves forward, and only to an event that is there:
-- setting it back (to hide removed events) or sideways (to a rewritten
-- event) is refused. With the service's role not owning the tables (see
-- docs/OPERATIONS.md), that role cannot disable this trigger or the
-- append-only ones on audit_events.
CREATE FUNCTION workspaces_audit_head_only_advances() RETURNS trigger AS $$
BEGIN
    IF NEW.audit_seq < OLD.audit_seq
       OR (NEW.audit_seq = OLD.audit_seq AND NEW.audit_head <> OLD.audit_head)
       OR (NEW.audit_seq > OLD.audit_seq AND NOT EXISTS (
             SELECT 1 FROM audit_events
             WHERE workspace_id = NEW.id AND seq = NEW.audit_seq AND hash = NEW.audit_head)) THEN
        RAISE EXCEPTION 'the audit chain head only moves forward, to an event that exists';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER workspaces_audit_head_only_advances
    BEFORE UPDATE ON workspaces
    FOR EACH ROW EXECUTE FUNCTION workspaces_audit_head_only_advances();
