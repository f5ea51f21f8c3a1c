package planner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"github.com/pganalyze/pg_query_go/v5/parser"
)

// Definition is one CREATE MATERIALIZED VIEW statement read from a file.
type Definition struct {
	// Name is the view's name as written, schema-qualified only when the
	// definition qualifies it.
	Name string
	// Target is the table that holds the view's result. Written is the
	// name as written; an unqualified one is given its schema once, on the
	// target, before the view is planned (writer.ResolveTargets).
	Target  Table
	Written Table
	File    string
	Line    int
	// Statement is the whole statement text; Query is its SELECT part, and
	// queryOffset the byte offset of Query in the file.
	Statement string
	Query     string
	// ColumnNames are the names of a column list after the view's name
	// (CREATE MATERIALIZED VIEW v (a, b) AS ...): they name the first
	// output columns; the others keep the query's names.
	ColumnNames []string
	// History is set by WITH (history = on): every change of the view is
	// kept in HistoryTable.
	History bool
	// Stream names the internal tables of the stream that maintains the
	// view (see CopyTable): its slot, or empty for the names a stream kept
	// from before internal tables were named per stream.
	Stream      string
	Options     map[string]string
	queryOffset int
	stmtOffset  int
	fileText    string
	stmt        *pg_query.SelectStmt
	// whole is, for the parts of a view split by Decompose, the view as
	// written; part is, for the top-N part, the internal view it reads.
	whole, part *Definition
	// anti are the aliases under which the query reads anti-join parts
	// (antijoin.go): at most one row matches an outer row.
	anti map[string]bool
	// notes are what splitting adds to the plan's notes for `check`.
	notes []string
	// views are, while Decompose splits it, the views of the files: a
	// part must not be split over one of their tables (outerjoin.go).
	views Views
	// tiesJudged is set once BreakTies has judged the query; ties are the
	// tie-breaks it added to ORDER BYs, and inserted where their text went
	// in Query (ties.go).
	tiesJudged bool
	ties       []tieBreak
	inserted   []insertion
}

// HistoryTable is the table that keeps the view's changes: its result
// table's name with _history, in the same schema.
func (d *Definition) HistoryTable() Table {
	return Table{Schema: d.Target.Schema, Name: d.Target.Name + "_history"}
}

// Table is a schema-qualified relation name.
type Table struct {
	Schema, Name string
}

// Quoted is the table's name as a quoted, schema-qualified SQL identifier.
func (t Table) Quoted() string {
	if t.Schema == "" {
		return QuoteIdent(t.Name)
	}
	return QuoteIdent(t.Schema) + "." + QuoteIdent(t.Name)
}

func (t Table) String() string {
	if t.Schema == "" {
		return t.Name
	}
	return t.Schema + "." + t.Name
}

// QuoteIdent quotes an SQL identifier.
func QuoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// QuoteLiteral quotes a string constant, for statements that take no
// parameters (SET TRANSACTION SNAPSHOT, DO blocks).
func QuoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Files are the definition files at path: path itself, or the .sql files
// of the directory path, sorted by name.
func Files(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("views %s: %w", path, err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	files, err := filepath.Glob(filepath.Join(path, "*.sql"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	return files, nil
}

// Load reads view definitions from a .sql file or from every .sql file in a
// directory (sorted by name). Definitions that parse are returned even when
// others fail: one broken view never stops the others.
func Load(path string) ([]*Definition, []error) {
	files, err := Files(path)
	if err != nil {
		return nil, []error{err}
	}
	var defs []*Definition
	var errs []error
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("views %s: %w", f, err))
			continue
		}
		d, e := ParseFile(f, string(text))
		defs = append(defs, d...)
		errs = append(errs, e...)
	}
	seen := map[string]*Definition{}
	var unique []*Definition
	for _, d := range defs {
		key := d.Target.String()
		if d.Target.Schema == "" {
			key = "public." + key
		}
		if prev, ok := seen[key]; ok {
			errs = append(errs, &ViewError{View: d.Name, File: d.File, Line: d.Line,
				Msg:  fmt.Sprintf("defined twice (first at %s:%d)", prev.File, prev.Line),
				Hint: "give each view its own name"})
			continue
		}
		seen[key] = d
		unique = append(unique, d)
	}
	return unique, errs
}

// ParseFile splits text into statements and parses each on its own, so that
// a syntax error in one does not hide the others.
func ParseFile(file, text string) ([]*Definition, []error) {
	var defs []*Definition
	var errs []error
	for _, piece := range splitStatements(text) {
		d, err := parseStatement(file, text, piece.start, piece.end)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if d != nil {
			defs = append(defs, d)
		}
	}
	return defs, errs
}

type span struct{ start, end int }

// splitStatements cuts text at top-level semicolons using the server's own
// lexer, so semicolons inside strings, comments and dollar quotes stay put.
func splitStatements(text string) []span {
	res, err := pg_query.Scan(text)
	if err != nil {
		return []span{{0, len(text)}}
	}
	var out []span
	start := 0
	for _, tok := range res.Tokens {
		if tok.Token == pg_query.Token_ASCII_59 {
			out = append(out, span{start, int(tok.Start)})
			start = int(tok.End)
		}
	}
	out = append(out, span{start, len(text)})
	return out
}

// lineAt is the 1-based line of byte offset off in text.
func lineAt(text string, off int) int {
	if off > len(text) {
		off = len(text)
	}
	if off < 0 {
		off = 0
	}
	return strings.Count(text[:off], "\n") + 1
}

// charToByte converts a 1-based character position (as the server reports
// error positions) within s to a byte offset.
func charToByte(s string, pos int) int {
	if pos <= 1 {
		return 0
	}
	i := 0
	for n := 1; n < pos && i < len(s); n++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return i
}

func parseStatement(file, text string, start, end int) (*Definition, error) {
	stmtText := text[start:end]
	trimmed := strings.TrimSpace(stripComments(stmtText))
	if trimmed == "" {
		return nil, nil
	}
	line := lineAt(text, start+firstToken(stmtText))
	tree, err := pg_query.Parse(stmtText)
	if err != nil {
		ve := &ViewError{File: file, Line: line, Construct: "syntax", Msg: "syntax error: " + err.Error(), Err: err}
		var pe *parser.Error
		if errors.As(err, &pe) && pe.Cursorpos > 0 {
			ve.Line = lineAt(text, start+charToByte(stmtText, pe.Cursorpos))
		}
		ve.View = guessName(stmtText)
		return nil, ve
	}
	if len(tree.Stmts) == 0 {
		return nil, nil
	}
	raw := tree.Stmts[0]
	ctas := raw.Stmt.GetCreateTableAsStmt()
	if ctas == nil || ctas.Objtype != pg_query.ObjectType_OBJECT_MATVIEW {
		return nil, &ViewError{File: file, Line: line, Construct: "statement",
			Msg:  "only CREATE MATERIALIZED VIEW name AS SELECT ... statements belong in a views file",
			Hint: "create tables, indexes and other objects in the database itself"}
	}
	into := ctas.Into
	rel := into.Rel
	d := &Definition{
		Target:     Table{Schema: rel.Schemaname, Name: rel.Relname},
		File:       file,
		Line:       line,
		Statement:  strings.TrimSpace(stmtText),
		Options:    map[string]string{},
		fileText:   text,
		stmtOffset: start,
	}
	d.Name = d.Target.String()
	d.Written = d.Target
	if rel.Catalogname != "" {
		return nil, d.errorf(0, "name", "a database-qualified view name is not supported", "name the view as schema.name or name")
	}
	for _, c := range into.ColNames {
		d.ColumnNames = append(d.ColumnNames, c.GetString_().GetSval())
	}
	if into.SkipData {
		return nil, d.errorf(0, "WITH NO DATA", "WITH NO DATA makes no sense for a maintained view", "remove WITH NO DATA")
	}
	for _, o := range into.Options {
		de := o.GetDefElem()
		if de == nil {
			continue
		}
		d.Options[de.Defname] = defElemValue(de)
	}
	if v, ok := d.Options["history"]; ok {
		switch strings.ToLower(v) {
		case "on", "true", "yes", "1":
			d.History = true
		case "off", "false", "no", "0":
		default:
			return nil, d.errorf(0, "WITH (history = "+v+")", "history must be on or off", "write WITH (history = on)")
		}
		delete(d.Options, "history")
	}
	if len(d.Options) > 0 {
		names := make([]string, 0, len(d.Options))
		for k := range d.Options {
			names = append(names, k)
		}
		sort.Strings(names)
		return nil, d.errorf(0, "WITH (...)", "unknown view option(s): "+strings.Join(names, ", "), "the only option deltaview knows is history = on or off")
	}
	sel := ctas.Query.GetSelectStmt()
	if sel == nil {
		return nil, d.errorf(0, "query", "the view's query must be a SELECT", "")
	}
	d.stmt = sel
	qs, qe, ok := querySpan(stmtText)
	if !ok {
		return nil, d.errorf(0, "query", "cannot find the SELECT after AS", "")
	}
	d.Query = stmtText[qs:qe]
	d.queryOffset = start + qs
	return d, nil
}

// querySpan finds the query of a CREATE MATERIALIZED VIEW: after the first
// top-level AS, up to an optional trailing WITH [NO] DATA.
func querySpan(stmt string) (int, int, bool) {
	res, err := pg_query.Scan(stmt)
	if err != nil {
		return 0, 0, false
	}
	depth := 0
	qs := -1
	toks := res.Tokens
	for i, tok := range toks {
		switch tok.Token {
		case pg_query.Token_ASCII_40:
			depth++
		case pg_query.Token_ASCII_41:
			depth--
		case pg_query.Token_AS:
			if depth == 0 && qs < 0 && i+1 < len(toks) {
				qs = int(toks[i+1].Start)
			}
		}
		if qs >= 0 {
			break
		}
	}
	if qs < 0 {
		return 0, 0, false
	}
	qe := len(stmt)
	n := len(toks)
	if n >= 2 && toks[n-1].Token == pg_query.Token_DATA_P {
		switch {
		case n >= 3 && toks[n-2].Token == pg_query.Token_NO && toks[n-3].Token == pg_query.Token_WITH:
			qe = int(toks[n-3].Start)
		case toks[n-2].Token == pg_query.Token_WITH:
			qe = int(toks[n-2].Start)
		}
	}
	return qs, qe, true
}

// firstToken is the byte offset of the first token that is not a comment.
func firstToken(s string) int {
	res, err := pg_query.Scan(s)
	if err != nil {
		return len(s) - len(strings.TrimLeft(s, " \t\r\n"))
	}
	for _, t := range res.Tokens {
		if t.Token != pg_query.Token_SQL_COMMENT && t.Token != pg_query.Token_C_COMMENT {
			return int(t.Start)
		}
	}
	return 0
}

func stripComments(s string) string {
	res, err := pg_query.Scan(s)
	if err != nil {
		return s
	}
	var b strings.Builder
	for _, t := range res.Tokens {
		if t.Token == pg_query.Token_SQL_COMMENT || t.Token == pg_query.Token_C_COMMENT {
			continue
		}
		b.WriteString(s[t.Start:t.End])
		b.WriteByte(' ')
	}
	return b.String()
}

// guessName finds the view name of a statement that does not parse, so the
// error can still name it.
func guessName(stmt string) string {
	res, err := pg_query.Scan(stmt)
	if err != nil {
		return ""
	}
	toks := res.Tokens
	for i := 0; i+1 < len(toks); i++ {
		if toks[i].Token == pg_query.Token_VIEW {
			j := i + 1
			if j+2 < len(toks) && toks[j].Token == pg_query.Token_IF_P {
				j += 3 // IF NOT EXISTS
			}
			var parts []string
			for ; j < len(toks); j++ {
				t := stmt[toks[j].Start:toks[j].End]
				if t == "." {
					continue
				}
				if toks[j].KeywordKind != pg_query.KeywordKind_NO_KEYWORD && toks[j].Token != pg_query.Token_IDENT {
					break
				}
				if strings.HasPrefix(t, `"`) {
					t = strings.ReplaceAll(strings.Trim(t, `"`), `""`, `"`)
				} else {
					t = strings.ToLower(t)
				}
				parts = append(parts, t)
				if j+1 >= len(toks) || stmt[toks[j+1].Start:toks[j+1].End] != "." {
					break
				}
			}
			return strings.Join(parts, ".")
		}
	}
	return ""
}

func defElemValue(de *pg_query.DefElem) string {
	if de.Arg == nil {
		return "true"
	}
	if s := de.Arg.GetString_(); s != nil {
		return s.Sval
	}
	// A bare word (history = off) reads as a type name.
	if tn := de.Arg.GetTypeName(); tn != nil && len(tn.Names) > 0 {
		if s := tn.Names[len(tn.Names)-1].GetString_(); s != nil {
			return s.Sval
		}
	}
	if s, err := deparseExpr(de.Arg); err == nil {
		return s
	}
	return ""
}

// errorf builds a ViewError for this definition at a node location (byte
// offset within the query's statement, as pg_query reports it; 0 means the
// statement's first line).
func (d *Definition) errorf(loc int32, construct, msg, hint string) *ViewError {
	line := d.Line
	if loc > 0 {
		// Node locations are offsets in the statement text, which starts at
		// the statement's first byte; the query offset is known in the file.
		line = d.lineOfStmtOffset(int(loc))
	}
	return &ViewError{View: d.Name, File: d.File, Line: line, Construct: construct, Msg: msg, Hint: hint}
}

// Refuse is a ViewError for this definition at its first line.
func (d *Definition) Refuse(construct, msg, hint string) *ViewError {
	return d.errorf(0, construct, msg, hint)
}

// lineOfStmtOffset maps a byte offset in the statement text to a file line.
func (d *Definition) lineOfStmtOffset(off int) int {
	return lineAt(d.fileText, d.stmtOffset+off)
}

// lineOfQueryChar maps a 1-based character position in Query (as the server
// reports error positions) to a file line.
func (d *Definition) lineOfQueryChar(pos int) int {
	return lineAt(d.fileText, d.queryOffset+d.asWritten(charToByte(d.Query, pos)))
}
