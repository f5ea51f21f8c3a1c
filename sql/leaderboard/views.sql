-- Total score per player, kept current as scores are posted, corrected and
-- deleted; a player without scores shows 0.
CREATE MATERIALIZED VIEW leaderboard AS
SELECT p.id AS player_id, p.name, COALESCE(SUM(s.score), 0) AS total_score
FROM players p
LEFT JOIN player_scores s ON p.id = s.player_id
GROUP BY p.id, p.name;

-- The same per-player total from the scores alone.
CREATE MATERIALIZED VIEW player_totals AS
SELECT player_id, SUM(score) AS total_score
FROM player_scores
GROUP BY player_id;

-- One row for the whole table: how many scores, their sum and average.
CREATE MATERIALIZED VIEW score_summary AS
SELECT count(*) AS scores, sum(score) AS total, avg(score) AS average_score
FROM player_scores;

-- Every high score, duplicates included.
CREATE MATERIALIZED VIEW high_scores AS
SELECT player_id, score
FROM player_scores
WHERE score >= 100;
