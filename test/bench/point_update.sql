\set id random(1, :rows)
UPDATE accounts SET created_at = now() WHERE id = :id;
