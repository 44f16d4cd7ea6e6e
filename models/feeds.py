"""Feed rows rendered as wire JSON inside PostgreSQL: a pull then joins ready-made text instead of
parsing and re-encoding every record in Python."""

# A Synkronus 1.0.3 observation (plus its `version`). synced_at: the client's when it sent one, else the
# time the server stored the record.
SYNKRONUS_OBSERVATION = """version, (
    '{"observation_id":' || to_json(record_key)::text
    || ',"form_type":' || to_json(record_type)::text
    || ',"form_version":' || to_json(schema_version)::text
    || ',"data":' || COALESCE(data::text, '{}')
    || ',"created_at":"' || fs_rfc3339(created_at)
    || '","updated_at":"' || fs_rfc3339(updated_at)
    || '","synced_at":' || COALESCE((meta->'synced_at')::text, '"' || fs_rfc3339(updated_at) || '"')
    || ',"deleted":' || CASE WHEN deleted THEN 'true' ELSE 'false' END
    || ',"geolocation":' || COALESCE(geolocation::text, 'null')
    || ',"version":' || version::text || '}') AS json"""
