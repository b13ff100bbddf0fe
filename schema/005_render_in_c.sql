-- The API objects are written by the app from plain columns now
-- (app/render.c): PostgreSQL sends columns several times faster than it
-- builds JSON, and api_user() could not be inlined (its sub-select), so
-- it was planned anew on every call.  The JSON builders go.
DROP FUNCTION api_user(users);
DROP FUNCTION api_conversation(conversations);
DROP FUNCTION api_message(messages);
DROP FUNCTION api_transaction(transactions);
DROP FUNCTION api_ledger(credit_ledger);
DROP FUNCTION api_cents(numeric);
DROP FUNCTION api_ts(timestamptz);
