-- The example schema: players and the scores they post.
CREATE TABLE players (
    id   integer PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE player_scores (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    player_id integer NOT NULL REFERENCES players (id),
    score     integer NOT NULL,
    posted_at timestamptz NOT NULL DEFAULT now()
);

-- deltaview needs the old values of updated and deleted rows.
ALTER TABLE players REPLICA IDENTITY FULL;
ALTER TABLE player_scores REPLICA IDENTITY FULL;

INSERT INTO players (id, name) VALUES
    (1, 'Ada'), (2, 'Grace'), (3, 'Linus'), (4, 'Margaret');

INSERT INTO player_scores (player_id, score) VALUES
    (1, 120), (1, 80), (2, 150), (3, 40), (3, 95), (4, 60);
