-- users.referrals_count, kept by a trigger on referrals.  Every
-- authenticated request reads the user object, and counting its
-- referrals there cost a third of the profile endpoint's database time;
-- referral rows are written rarely, so the count moves with them.
ALTER TABLE users ADD COLUMN referrals_count integer NOT NULL DEFAULT 0
    CONSTRAINT users_referrals_count_nonneg_chk CHECK (referrals_count >= 0);

UPDATE users u SET referrals_count = (SELECT count(*) FROM referrals r
                                      WHERE r.user_id = u.id);

CREATE FUNCTION count_referrals() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE users SET referrals_count = referrals_count + 1
         WHERE id = NEW.user_id;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE users SET referrals_count = referrals_count - 1
         WHERE id = OLD.user_id;
    ELSIF NEW.user_id IS DISTINCT FROM OLD.user_id THEN
        UPDATE users SET referrals_count = referrals_count - 1
         WHERE id = OLD.user_id;
        UPDATE users SET referrals_count = referrals_count + 1
         WHERE id = NEW.user_id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER referrals_count
    AFTER INSERT OR DELETE OR UPDATE OF user_id ON referrals
    FOR EACH ROW EXECUTE FUNCTION count_referrals();
