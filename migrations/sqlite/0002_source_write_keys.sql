-- Segment-style write keys: a JSON array of strings per source, like labels.
-- Sources created before this migration start with none; POST
-- /sources/{id}/writekey gives them one.
ALTER TABLE sources ADD COLUMN write_keys TEXT NOT NULL DEFAULT '[]';
