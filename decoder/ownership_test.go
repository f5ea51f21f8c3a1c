package decoder

import (
	"slices"
	"strings"
	"testing"
)

// What a role needs on the source depends on the publication: to create
// one, CREATE on the database and ownership of the tables; with one the
// tables' owner created beforehand, only REPLICATION and SELECT, and what
// that publication lacks is for its owner to add (deltaview never changes
// it); with deltaview's own, ownership of the tables it must add.
func TestPreflightWithPublication(t *testing.T) {
	src := newSource(t)
	reader := src.newRole(t, "REPLICATION")
	var db string
	if err := src.conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$reader", reader, "$db", db)
	src.exec(t, vars.Replace(`
		CREATE TABLE a (id int PRIMARY KEY);
		CREATE TABLE b (id int PRIMARY KEY, v int);
		CREATE TABLE parts (id int PRIMARY KEY) PARTITION BY RANGE (id);
		CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (10);
		CREATE TABLE h (id int);
		CREATE TABLE h1 () INHERITS (h);
		ALTER TABLE h REPLICA IDENTITY FULL;
		ALTER TABLE h1 REPLICA IDENTITY FULL;
		GRANT SELECT ON a, b, parts, h TO $reader;
		CREATE PUBLICATION h_only FOR TABLE ONLY h;
		CREATE PUBLICATION h_all FOR TABLE h;
		CREATE PUBLICATION covers FOR TABLE a, b, parts WITH (publish_via_partition_root = true);
		CREATE PUBLICATION only_a FOR TABLE a;
		CREATE PUBLICATION filtered FOR TABLE a, b WHERE (v > 0);
		CREATE PUBLICATION leaves FOR TABLE parts;
		CREATE PUBLICATION no_deletes FOR TABLE a WITH (publish = 'insert, update');
		CREATE PUBLICATION everything FOR ALL TABLES`))
	all := []TableName{{"public", "a"}, {"public", "b"}, {"public", "parts"}}
	notOwner := func(table string) string {
		return `role "$reader" does not own table "public"."` + table + `" (owner "postgres"), and CREATE PUBLICATION ... FOR TABLE needs ownership: run ALTER TABLE "public"."` +
			table + `" OWNER TO "$reader"; or connect as "postgres"; or have the owner create the publication beforehand`
	}
	tests := []struct {
		name, publication string
		ours              bool
		tables            []TableName
		want              []string
	}{
		{"no publication: deltaview creates it", "missing", false, all, []string{
			`role "$reader" may not create publications in database "$db": run GRANT CREATE ON DATABASE "$db" TO "$reader";`,
			notOwner("a"), notOwner("b"), notOwner("parts"),
		}},
		{"provided, publishing every table", "covers", false, all, nil},
		{"provided, lacking tables", "only_a", false, all, []string{
			`publication "only_a" (owner "postgres", not created by deltaview for this stream) does not publish table "public"."b": have its owner run ALTER PUBLICATION "only_a" ADD TABLE "public"."b"; (deltaview never changes a publication it did not create)`,
			`publication "only_a" (owner "postgres", not created by deltaview for this stream) does not publish partitioned table "public"."parts" as itself: have its owner run ALTER PUBLICATION "only_a" SET (publish_via_partition_root = true); (and ALTER PUBLICATION "only_a" ADD TABLE "public"."parts"; if it is not in it)`,
		}},
		{"provided, with a row filter", "filtered", false, []TableName{{"public", "a"}, {"public", "b"}}, []string{
			`publication "filtered" (owner "postgres", not created by deltaview for this stream) publishes only some rows or columns of table "public"."b": have its owner publish it in full (ALTER PUBLICATION "filtered" DROP TABLE "public"."b"; ALTER PUBLICATION "filtered" ADD TABLE "public"."b";)`,
		}},
		{"provided, publishing partitions as themselves", "leaves", false, []TableName{{"public", "parts"}}, []string{
			`publication "leaves" (owner "postgres", not created by deltaview for this stream) does not publish partitioned table "public"."parts" as itself: have its owner run ALTER PUBLICATION "leaves" SET (publish_via_partition_root = true); (and ALTER PUBLICATION "leaves" ADD TABLE "public"."parts"; if it is not in it)`,
		}},
		{"provided, lacking an inheritance child", "h_only", false, []TableName{{"public", "h"}}, []string{
			`publication "h_only" (owner "postgres", not created by deltaview for this stream) does not publish table "public"."h1": have its owner run ALTER PUBLICATION "h_only" ADD TABLE "public"."h1"; (deltaview never changes a publication it did not create)`,
		}},
		{"provided, with the inheritance children", "h_all", false, []TableName{{"public", "h"}}, nil},
		{"provided, without deletes", "no_deletes", false, nil, []string{
			`publication "no_deletes" (owner "postgres", not created by deltaview for this stream) does not publish delete, truncate: have its owner run ALTER PUBLICATION "no_deletes" SET (publish = 'insert, update, delete, truncate');`,
		}},
		{"provided, for all tables", "everything", false, nil, []string{
			`publication "everything" publishes ALL TABLES, which would stream deltaview's own writes: choose another publication with --publication`,
		}},
		{"deltaview's own, lacking tables: they must be added", "only_a", true, all, []string{notOwner("b"), notOwner("parts")}},
	}
	conn := connect(t, src.urlAs(t, reader))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub, err := ReadPublication(t.Context(), conn, tt.publication)
			if err != nil {
				t.Fatal(err)
			}
			pub.Ours = tt.ours
			var want []string
			for _, w := range tt.want {
				want = append(want, vars.Replace(w))
			}
			if tt.tables == nil {
				expectProblems(t, PreflightWith(t.Context(), conn, nil, pub), want)
				return
			}
			// As prepare runs it: the server once, then table by table.
			errs := []error{PreflightWith(t.Context(), conn, nil, pub)}
			for _, table := range tt.tables {
				errs = append(errs, PreflightWith(t.Context(), conn, []TableName{table}, pub))
			}
			var problems []string
			for _, err := range errs {
				if pe, ok := err.(*PreflightError); ok {
					// Each table's check repeats the server's problems.
					for _, p := range pe.Problems {
						if !slices.Contains(problems, p) {
							problems = append(problems, p)
						}
					}
				} else if err != nil {
					t.Fatal(err)
				}
			}
			if strings.Join(problems, "\n") != strings.Join(want, "\n") {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(problems, "\n  "), strings.Join(want, "\n  "))
			}
			// A provided publication is never changed: CheckProvided says
			// the same about the tables.
			if !tt.ours && tt.publication != "missing" {
				err := CheckProvided(t.Context(), conn, pub, tt.tables)
				if (err == nil) != (len(want) == 0) {
					t.Errorf("CheckProvided: %v", err)
				}
			}
		})
	}
}
