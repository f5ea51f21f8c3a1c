package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/deltaview/deltaview/internal/pgcluster"
	"github.com/jackc/pgx/v5"
)

// createDatabase creates a database on c with the given options (e.g. its
// collation) and returns its name.
func createDatabase(t *testing.T, c *pgcluster.Cluster, options string) string {
	t.Helper()
	name := c.NewDatabase(t)
	admin := connect(t, c.URL("postgres"))
	execSQL(t, admin, "DROP DATABASE "+pgx.Identifier{name}.Sanitize())
	execSQL(t, admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0 "+options)
	return name
}

// collationEnv is an env whose source and target databases have the given
// default collations (CREATE DATABASE options).
func collationEnv(t *testing.T, srcOptions, tgtOptions string) *env {
	t.Helper()
	c := pgcluster.Shared(t)
	e := newEnv(t, nil)
	e.srcURL = c.URL(createDatabase(t, c, srcOptions))
	e.tgtURL = c.URL(createDatabase(t, c, tgtOptions))
	e.src, e.tgt = connect(t, e.srcURL), connect(t, e.tgtURL)
	return e
}

// ciCollation compares text ignoring case; deterministic = false makes
// 'Alice' and 'alice' one group.
const ciCollation = `CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`

// Text comparisons, ordering and grouping in the target give what the
// source gives, whatever the target database's own default collation:
// each column deltaview creates takes the collation of the source column
// (or of the view's output) explicitly. Full-text search takes the
// source's default_text_search_config.
func TestTargetWithAnotherCollation(t *testing.T) {
	cases := []struct {
		name, src, tgt string
	}{
		{"ICU en source, C target", "LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C'", "LOCALE 'C'"},
		{"C source, ICU en target", "LOCALE 'C'", "LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := collationEnv(t, tc.src, tc.tgt)
			// The target's own text search configuration is english.
			execSQL(t, e.tgt, ciCollation+`; ALTER DATABASE `+queryString(t, e.tgt, "SELECT quote_ident(current_database())")+
				` SET default_text_search_config = 'pg_catalog.english'`)
			execSQL(t, e.src, `ALTER DATABASE `+queryString(t, e.src, "SELECT quote_ident(current_database())")+
				` SET default_text_search_config = 'pg_catalog.simple'`)
			e.src = connect(t, e.srcURL)
			e.exec(ciCollation + `;
				CREATE TABLE people (id int PRIMARY KEY, grp int NOT NULL, name text NOT NULL,
					tag text COLLATE ci NOT NULL, code text COLLATE "C" NOT NULL, body text NOT NULL);
				INSERT INTO people VALUES
					(1, 1, 'apple', 'Red', 'b1', 'the runners were running'),
					(2, 1, 'Banana', 'red', 'B2', 'cats and dogs'),
					(3, 2, 'cherry', 'GREEN', 'a3', 'jumping foxes'),
					(4, 2, 'Apple', 'green', 'A4', 'walked home'),
					(5, 2, 'zebra', 'Blue', '_5', 'studies of studying'),
					(6, 1, 'Zulu', 'red', 'z6', 'boxes')`)
			views := []view{
				plainView("min_max", `SELECT min(name) AS lo, max(name) AS hi, count(*) AS n FROM people`),
				plainView("first_three", `SELECT id, name FROM people ORDER BY name, id LIMIT 3`),
				plainView("names_per_group", `SELECT grp, string_agg(name, ',' ORDER BY name, id) AS names FROM people GROUP BY grp`),
				plainView("before_b", `SELECT id, name FROM people WHERE name < 'b'`),
				plainView("c_codes", `SELECT grp, min(code) AS lo, max(code) AS hi, string_agg(code, ',' ORDER BY code) AS codes FROM people GROUP BY grp`),
				plainView("c_in_query", `SELECT id, name FROM people WHERE name COLLATE "C" < 'b'`),
				plainView("words", `SELECT id, to_tsvector(body)::text AS doc FROM people`),
			}
			// Which spelling stands for a case-insensitive group is
			// arbitrary; its members are not.
			tags := plainView("per_tag", `SELECT tag, count(*) AS n FROM people GROUP BY tag`)
			checkTags := func(step string) {
				t.Helper()
				got := rowsText(t, e.tgt, `SELECT lower(tag), n FROM per_tag`)
				want := rowsText(t, e.src, `SELECT lower(tag), count(*) FROM people GROUP BY tag`)
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Fatalf("%s: per_tag differs from its query\n got: %v\nwant: %v", step, got, want)
				}
			}
			e.start(append(views, tags))
			e.check(append(views, tags)...)
			checkTags("snapshot")
			steps := []step{
				{"insert", `INSERT INTO people VALUES
					(7, 1, 'aardvark', 'RED', 'c7', 'singing songs'),
					(8, 2, 'Äpfel', 'Green', 'Z8', 'flies flying'),
					(9, 3, 'banana', 'BLUE', 'b9', 'the cats sat'),
					(10, 3, 'Able', 'purple', 'a10', 'ran quickly')`},
				{"update", `UPDATE people SET name = 'aaron', tag = 'PURPLE', code = 'Y1' WHERE id = 3;
					UPDATE people SET name = 'ZZ' WHERE id = 5`},
				{"delete", `DELETE FROM people WHERE id IN (1, 7)`},
			}
			for i, s := range steps {
				e.exec(s.sql)
				e.checkAfterStep(i, s, views)
				e.caughtUp(tags)
				checkTags("after " + s.what)
			}
		})
	}
}

// A view that needs a collation the target has none like is refused,
// naming the collation and how to create it; the other views run.
func TestTargetLacksCollation(t *testing.T) {
	e := collationEnv(t, "LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C'", "LOCALE 'C'")
	e.exec(`CREATE COLLATION accentless (provider = icu, locale = 'und-u-ks-level1', deterministic = false);
		CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL, nick text COLLATE accentless NOT NULL);
		INSERT INTO people VALUES (1, 'apple', 'Élan'), (2, 'Banana', 'elan'), (3, 'cherry', 'Bob')`)
	ok := plainView("names", `SELECT min(name) AS lo, max(name) AS hi FROM people`)
	nicks := plainView("nicks", `SELECT nick, count(*) AS n FROM people GROUP BY nick`)
	explicit := plainView("explicit", `SELECT id, name COLLATE accentless AS name FROM people`)
	e.start([]view{ok, nicks, explicit})
	e.failed(nicks, `column "nick" needs collation public.accentless (ICU locale 'und-u-ks-level1', nondeterministic), which the target database does not have`)
	e.failed(nicks, `CREATE COLLATION public.accentless (provider = icu, locale = 'und-u-ks-level1', deterministic = false)`)
	e.failed(explicit, `column "name" needs collation public.accentless`)
	e.exec(`INSERT INTO people VALUES (4, 'Aaron', 'x')`)
	e.check(ok)
}

// The target sessions take the source's settings; a target that cannot
// take one (here a text search configuration it lacks) stops deltaview
// with the setting named rather than computing other results.
func TestTargetCannotTakeSetting(t *testing.T) {
	e := newEnv(t, pgcluster.Shared(t))
	e.exec(`CREATE TEXT SEARCH CONFIGURATION public.mine (COPY = pg_catalog.simple);
		ALTER DATABASE ` + queryString(t, e.src, "SELECT quote_ident(current_database())") + ` SET default_text_search_config = 'public.mine';
		CREATE TABLE docs (id int PRIMARY KEY, body text)`)
	e.src = connect(t, e.srcURL)
	s := e.start([]view{plainView("words", `SELECT id, to_tsvector(body)::text AS doc FROM docs`)})
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		t.Fatal("deltaview still runs against a target without the source's text search configuration")
	}
	s.cmd = nil
	if log := s.logs(); !strings.Contains(log, `setting default_text_search_config = 'public.mine'`) {
		t.Fatalf("deltaview's log does not name the setting:\n%s", log)
	}
}
