-- The session family whose access tokens outlive the last move of
-- tokens_valid_after: a password change ends every other session at
-- once but keeps the one that made it.  NULL when every session ended
-- (reset, logout everywhere, ban).
ALTER TABLE users ADD COLUMN tokens_valid_family uuid;
