-- Total score per player, kept current as scores are posted, corrected and
-- deleted.
CREATE MATERIALIZED VIEW leaderboard AS
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
