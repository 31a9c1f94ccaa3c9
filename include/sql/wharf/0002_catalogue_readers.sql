-- Migration 0002 (issue #13): which reader roles can read each dataset, as its YAML's
-- sensitivity implies when it last ran (README, "Access control").
ALTER TABLE wharf.catalogue ADD COLUMN IF NOT EXISTS readers text[];
COMMENT ON COLUMN wharf.catalogue.readers IS 'The reader roles that can read the dataset (directly or as members): PUBLIC -> <prefix>_public and <prefix>_private; PRIVATE -> <prefix>_private; PROTECTED -> <prefix>_protected_<domain>.';
