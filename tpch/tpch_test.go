package tpch

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// table reads a whole generated table as COPY text.
func table(t *testing.T, c Config, name string) string {
	t.Helper()
	return tableHead(t, c, name, -1)
}

// tableHead reads the first n rows of a generated table (of orders, for
// lineitem), all with n < 0.
func tableHead(t *testing.T, c Config, name string, n int64) string {
	t.Helper()
	for _, g := range c.tables() {
		if g.name == name {
			if n < 0 || n > g.rows {
				n = g.rows
			}
			b, err := io.ReadAll(&rowReader{n: n, row: g.row})
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
	t.Fatalf("no table %s", name)
	return ""
}

func TestSameSeedSameRows(t *testing.T) {
	a, b := Config{SF: 0.01, Seed: 7}, Config{SF: 0.01, Seed: 8}
	for _, name := range Tables {
		first, again, other := tableHead(t, a, name, 3000), tableHead(t, a, name, 3000), tableHead(t, b, name, 3000)
		if first != again {
			t.Errorf("%s: two generations with one seed differ", name)
		}
		if name != "region" && name != "nation" && first == other {
			t.Errorf("%s: seeds 7 and 8 give the same rows", name)
		}
	}
}

func TestRowCounts(t *testing.T) {
	c := Config{SF: 0.01, Seed: 1}
	want := map[string]int{"region": 5, "nation": 25, "part": 2000, "supplier": 100, "partsupp": 8000, "customer": 1500, "orders": 15000}
	for name, n := range want {
		if got := strings.Count(table(t, c, name), "\n"); got != n {
			t.Errorf("%s: %d rows, want %d", name, got, n)
		}
	}
	// 1 to 7 lines per order: 4 on average.
	if got := strings.Count(table(t, c, "lineitem"), "\n"); got < 15000*37/10 || got > 15000*43/10 {
		t.Errorf("lineitem: %d rows, want about 60,000", got)
	}
}

func TestFormulas(t *testing.T) {
	cases := []struct {
		name      string
		got, want int64
	}{
		{"p_retailprice of part 1 (901.00)", retailPrice(1), 90100},
		{"p_retailprice of part 1000 (900.00 + 100/100)", retailPrice(1000), 90100},
		{"p_retailprice of part 123456", retailPrice(123456), 90000 + 12345 + 100*456},
		{"first loaded order key", orderKey(1), 1},
		{"ninth loaded order key skips to the next 32", orderKey(9), 33},
		{"first RF1 key is the first unused", newOrderKey(0), 9},
		{"25th RF1 key is in the second group", newOrderKey(24), 41},
		{"ps_suppkey of part 1, i 0", suppkey(1, 0, 100), 2},
		{"ps_suppkey of part 1, i 1", suppkey(1, 1, 100), 27},
		{"line charge 1000.00, 5% off, 8% tax", lineCharge(100000, 5, 8), 102600},
		{"line charge rounds half up", lineCharge(1, 50, 0), 1},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestKeySpacesDoNotMeet(t *testing.T) {
	loaded := map[int64]bool{}
	for i := int64(1); i <= 10_000; i++ {
		k := orderKey(i)
		if loaded[k] {
			t.Fatalf("loaded key %d twice", k)
		}
		loaded[k] = true
	}
	for m := int64(0); m < 30_000; m++ {
		if k := newOrderKey(m); loaded[k] || k > 40_000 {
			t.Fatalf("RF1 order %d has key %d, loaded or beyond the loaded range", m, k)
		}
		loaded[newOrderKey(m)] = true
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		sf float64
		ok bool
	}{
		{0.01, true}, {0.1, true}, {1, true}, {0.05, true},
		{0, false}, {-1, false},
		{0.001, false}, // 10 suppliers: a part would get one twice
		{0.012, false}, // 120 suppliers: 3 * (30 + 10) = 120
	}
	for _, c := range cases {
		err := Config{SF: c.sf}.Validate()
		if (err == nil) != c.ok {
			t.Errorf("SF %v: Validate() = %v, want ok %v", c.sf, err, c.ok)
		}
	}
}

// The orders and lineitem generators agree: o_totalprice and
// o_orderstatus follow the order's lines.
func TestOrderFollowsItsLines(t *testing.T) {
	c := Config{SF: 0.01, Seed: 3}
	statuses := map[byte]int{}
	for i := int64(1); i <= 2000; i++ {
		o := c.loadedOrder(i)
		var total int64
		open := 0
		for _, l := range o.lines {
			total += lineCharge(l.price, l.discount, l.tax)
			if l.status == 'O' {
				open++
			}
			if l.ship <= o.date || l.receipt <= l.ship {
				t.Fatalf("order %d line %d: dates out of order", o.key, l.number)
			}
		}
		want := byte('P')
		if open == 0 {
			want = 'F'
		} else if open == len(o.lines) {
			want = 'O'
		}
		if o.total != total || o.status != want || o.cust%3 == 0 {
			t.Fatalf("order %d: total %d status %c customer %d, want total %d status %c and a customer not divisible by 3", o.key, o.total, o.status, o.cust, total, want)
		}
		statuses[o.status]++
	}
	if len(statuses) != 3 {
		t.Errorf("order statuses %v, want F, O and P", statuses)
	}
}

func TestPlantedComments(t *testing.T) {
	c := Config{SF: 0.1, Seed: 5}
	special, n := 0, 0
	for i := int64(1); i <= 20_000; i++ {
		o := c.loadedOrder(i)
		if s := strings.Index(o.comment, "special"); s >= 0 && strings.Contains(o.comment[s:], "requests") {
			special++
		}
		if len(o.comment) < 19 || len(o.comment) > 78 {
			t.Fatalf("o_comment %q: length %d, want 19 to 78", o.comment, len(o.comment))
		}
		n++
	}
	// 1% of 20,000: 200, give or take 3.5 standard deviations.
	if special < 150 || special > 250 {
		t.Errorf("%d of %d o_comments hold special...requests, want about 1%%", special, n)
	}
	suppliers := Config{SF: 2, Seed: 5} // 20,000 suppliers: 10 of each
	data := table(t, suppliers, "supplier")
	if got := strings.Count(data, "Customer"); got < 10 {
		t.Errorf("%d s_comments hold Customer, want about 20", got)
	}
	for _, word := range []string{"Complaints", "Recommends"} {
		if got := strings.Count(data, word); got < 3 || got > 20 {
			t.Errorf("%d s_comments hold Customer...%s, want about 10", got, word)
		}
	}
	if bytes.ContainsAny([]byte(data), "\\\r") {
		t.Error("supplier rows hold characters COPY would need escaped")
	}
}
