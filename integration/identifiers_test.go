package integration

import "testing"

// Schema, table, column, view and publication names that need quoting
// (spaces, double quotes, capitals, non-ASCII) work end to end: snapshot,
// publication, stream and result tables.
func TestQuotedIdentifiers(t *testing.T) {
	t.Parallel()
	t.Run("same database", func(t *testing.T) {
		t.Parallel()
		quotedIdentifiers(t, newEnv(t, nil))
	})
	t.Run("separate server", func(t *testing.T) {
		t.Parallel()
		quotedIdentifiers(t, newEnv(t, targetCluster(t)))
	})
}

func quotedIdentifiers(t *testing.T, e *env) {
	e.pub = `Pub "Ü" 1`
	e.exec(`CREATE SCHEMA "Game Schema";
		CREATE TABLE "Game Schema"."Player Scores" ("Player Id" int, "Score" int, "Note ""x""" text, ünï text);
		ALTER TABLE "Game Schema"."Player Scores" REPLICA IDENTITY FULL;
		INSERT INTO "Game Schema"."Player Scores" VALUES (1, 10, 'a', 'ä'), (1, 5, NULL, 'ö'), (2, 7, 'b"c', NULL);
		CREATE TABLE "Game Schema"."Teams ""T""" ("Team Id" int, "Ünï Code" text, "Name" text, PRIMARY KEY ("Ünï Code", "Team Id"));
		INSERT INTO "Game Schema"."Teams ""T""" VALUES (1, 'ä', 'Red'), (2, 'ö', 'Blue')`)
	views := []view{
		{name: `Sales Ü.Top "Players"`, table: `"Sales Ü"."Top ""Players"""`,
			query: `SELECT "Player Id", sum("Score") AS "Total Score", count(*) AS "Rows ""n"""
			FROM "Game Schema"."Player Scores" GROUP BY "Player Id"`},
		{name: `Sales Ü.All Notes`, table: `"Sales Ü"."All Notes"`,
			query: `SELECT "Player Id" AS "Who?", "Note ""x""", ünï AS "Ünï" FROM "Game Schema"."Player Scores" AS "S s" WHERE "S s"."Score" > 0`},
		{name: `Team "Names"`, table: `"Team ""Names"""`,
			query: `SELECT t."Name", count(*) AS "N n" FROM "Game Schema"."Teams ""T""" t JOIN "Game Schema"."Player Scores" s ON s."Player Id" = t."Team Id" GROUP BY t."Name"`},
		{name: `Ünï Total`, table: `"Ünï Total"`,
			query: `SELECT count(ünï) AS "Ünï count", sum("Score") AS "ALL" FROM "Game Schema"."Player Scores"`},
	}
	e.start(views)
	e.runSteps(views, []step{
		{"snapshot", `SELECT 1`},
		{"insert", `INSERT INTO "Game Schema"."Player Scores" VALUES (3, 1, 'new', 'ß'), (1, 1, E'tab\there', '日本')`},
		{"update a quoted column", `UPDATE "Game Schema"."Player Scores" SET "Score" = "Score" + 100, "Note ""x""" = 'Ü"' WHERE "Player Id" = 1`},
		{"move between groups", `UPDATE "Game Schema"."Player Scores" SET "Player Id" = 2 WHERE "Score" = 1`},
		{"delete", `DELETE FROM "Game Schema"."Player Scores" WHERE "Player Id" = 2`},
		{"rename and re-key a table with a primary key", `UPDATE "Game Schema"."Teams ""T""" SET "Name" = 'Rot' WHERE "Team Id" = 1;
			UPDATE "Game Schema"."Teams ""T""" SET "Team Id" = 3, "Ünï Code" = 'ü' WHERE "Team Id" = 2;
			DELETE FROM "Game Schema"."Teams ""T""" WHERE "Team Id" = 1`},
	})
}
