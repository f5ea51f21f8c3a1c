package tpch

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Config says what to generate.
type Config struct {
	// SF is the scale factor: 1 is 6,000,000 lineitems (about 1 GB).
	SF float64
	// Seed makes the data and the rounds reproducible: the same seed and
	// scale factor give the same rows.
	Seed uint64
}

// Validate refuses scale factors whose table sizes are empty, and those for
// which clause 4.2.3's PS_SUPPKEY formula gives a part the same supplier
// twice (it needs at least about 100 suppliers, SF 0.01, and breaks at a
// few sizes such as SF 0.012).
func (c Config) Validate() error {
	if c.SF <= 0 || math.IsNaN(c.SF) || math.IsInf(c.SF, 0) {
		return fmt.Errorf("scale factor %v: must be positive", c.SF)
	}
	s, p := c.suppliers(), c.parts()
	if s < 4 {
		return fmt.Errorf("scale factor %v: %d suppliers, need at least 4 (SF 0.0004)", c.SF, s)
	}
	for k := int64(0); k <= (p-1)/s; k++ {
		seen := map[int64]bool{}
		for i := int64(0); i < 4; i++ {
			d := i * (s/4 + k) % s
			if seen[d] {
				return fmt.Errorf("scale factor %v: the PS_SUPPKEY formula of clause 4.2.3 gives a part one supplier twice with %d suppliers; use another scale factor, e.g. 0.01 or 0.1", c.SF, s)
			}
			seen[d] = true
		}
	}
	return nil
}

func (c Config) scaled(n float64) int64 { return max(1, int64(math.Round(c.SF*n))) }

func (c Config) suppliers() int64 { return c.scaled(10_000) }
func (c Config) parts() int64     { return c.scaled(200_000) }
func (c Config) customers() int64 { return c.scaled(150_000) }

// Orders is the number of orders loaded (SF * 1,500,000).
func (c Config) Orders() int64   { return c.scaled(1_500_000) }
func (c Config) clerks() int64   { return c.scaled(1_000) }
func (c Config) partsupp() int64 { return 4 * c.parts() }

// Random streams: each table (and each order) draws from a stream of its
// own, so that a row does not depend on how many were generated before it.
const (
	streamRegion uint64 = iota + 1
	streamNation
	streamPart
	streamSupplier
	streamPartsupp
	streamCustomer
	streamOrder
	streamNewOrder
	streamRound
)

// rnd draws the specification's "random" values: uniform over a range.
type rnd struct{ *rand.Rand }

func newRnd(seed, stream, i uint64) rnd {
	return rnd{rand.New(rand.NewPCG(seed, stream<<48^i))}
}

// between is uniform in [lo, hi].
func (r rnd) between(lo, hi int64) int64 { return lo + r.Int64N(hi-lo+1) }

func (r rnd) pick(words []string) string { return words[r.IntN(len(words))] }

// Dates are days since 1970-01-01.
var (
	startDate   = days(1992, 1, 1)
	currentDate = days(1995, 6, 17)
	endDate     = days(1998, 12, 31)
)

func days(y int, m time.Month, d int) int64 {
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

func appendDate(b []byte, d int64) []byte {
	return time.Unix(d*86400, 0).UTC().AppendFormat(b, "2006-01-02")
}

// appendCents writes an amount in hundredths as a numeric(15,2) literal.
func appendCents(b []byte, c int64) []byte {
	if c < 0 {
		b = append(b, '-')
		c = -c
	}
	b = strconv.AppendInt(b, c/100, 10)
	b = append(b, '.', byte('0'+c/10%10), byte('0'+c%10))
	return b
}

func appendInt(b []byte, i int64) []byte { return strconv.AppendInt(b, i, 10) }

// Rows are written in COPY's text format. No generated value holds a tab,
// newline or backslash, so nothing needs escaping.
func field(b []byte, s string) []byte { return append(append(b, s...), '\t') }

func endRow(b []byte) []byte { b[len(b)-1] = '\n'; return b }

// retailPrice is P_RETAILPRICE in hundredths (clause 4.2.3).
func retailPrice(partkey int64) int64 {
	return 90000 + (partkey/10)%20001 + 100*(partkey%1000)
}

// suppkey is the i-th (0..3) supplier of a part: PS_SUPPKEY of clause 4.2.3.
func suppkey(partkey, i, suppliers int64) int64 {
	return (partkey+i*(suppliers/4+(partkey-1)/suppliers))%suppliers + 1
}

// phone is clause 4.2.2.9's phone number: the country code is the nation
// key plus 10.
func (r rnd) phone(nation int64) string {
	return fmt.Sprintf("%02d-%03d-%03d-%04d", nation+10, r.between(100, 999), r.between(100, 999), r.between(1000, 9999))
}

// vstring is a random string of letters and digits of length [lo, hi].
func (r rnd) vstring(lo, hi int64) string {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,"
	b := make([]byte, r.between(lo, hi))
	for i := range b {
		b[i] = chars[r.IntN(len(chars))]
	}
	return string(b)
}

// orderKey is the key of the i-th (1-based) loaded order: the first 8 keys
// of every 32 (clause 4.2.3); refreshes insert orders in the other 24.
func orderKey(i int64) int64 { return (i-1)/8*32 + (i-1)%8 + 1 }

// newOrderKey is the key of the m-th (0-based) order inserted by RF1.
func newOrderKey(m int64) int64 { return m/24*32 + 8 + m%24 + 1 }

type order struct {
	key, cust, total, date, clerk int64
	status                        byte
	priority, comment             string
	lines                         []line
}

type line struct {
	part, supp, number, quantity, price, discount, tax int64
	ship, commit, receipt                              int64
	returnFlag, status                                 byte
	instruct, mode, comment                            string
}

// genOrder makes an order with key and its lineitems from r.
func (c Config) genOrder(r rnd, key int64) order {
	o := order{key: key, date: r.between(startDate, endDate-151)}
	for {
		o.cust = r.between(1, c.customers())
		// A third of the customers never order (clause 4.2.3).
		if o.cust%3 != 0 || c.customers() < 3 {
			break
		}
	}
	o.priority = r.pick(priorities)
	o.clerk = r.between(1, c.clerks())
	o.comment = r.orderComment()
	n := r.between(1, 7)
	o.lines = make([]line, n)
	shipped := 0
	for j := range o.lines {
		l := &o.lines[j]
		l.number = int64(j + 1)
		l.part = r.between(1, c.parts())
		l.supp = suppkey(l.part, r.between(0, 3), c.suppliers())
		l.quantity = r.between(1, 50)
		l.price = l.quantity * retailPrice(l.part)
		l.discount = r.between(0, 10)
		l.tax = r.between(0, 8)
		l.ship = o.date + r.between(1, 121)
		l.commit = o.date + r.between(30, 90)
		l.receipt = l.ship + r.between(1, 30)
		l.returnFlag = 'N'
		if l.receipt <= currentDate {
			l.returnFlag = "RA"[r.IntN(2)]
		}
		l.status = 'O'
		if l.ship <= currentDate {
			l.status = 'F'
			shipped++
		}
		l.instruct = r.pick(instructions)
		l.mode = r.pick(modes)
		l.comment = r.text(10, 43)
		o.total += lineCharge(l.price, l.discount, l.tax)
	}
	switch shipped {
	case 0:
		o.status = 'O'
	case len(o.lines):
		o.status = 'F'
	default:
		o.status = 'P'
	}
	return o
}

// lineCharge is L_EXTENDEDPRICE * (1 + L_TAX) * (1 - L_DISCOUNT) in
// hundredths, rounded half away from zero as numeric's round(x, 2) does.
func lineCharge(price, discount, tax int64) int64 {
	return (price*(100+tax)*(100-discount) + 5000) / 10000
}

func (o *order) appendRow(b []byte) []byte {
	b = appendInt(b, o.key)
	b = append(b, '\t')
	b = appendInt(b, o.cust)
	b = append(b, '\t', o.status, '\t')
	b = appendCents(b, o.total)
	b = append(b, '\t')
	b = appendDate(b, o.date)
	b = append(b, '\t')
	b = field(b, o.priority)
	b = field(b, fmt.Sprintf("Clerk#%09d", o.clerk))
	b = field(b, "0")
	b = field(b, o.comment)
	return endRow(b)
}

func (o *order) appendLines(b []byte) []byte {
	for i := range o.lines {
		l := &o.lines[i]
		b = appendInt(b, o.key)
		b = append(b, '\t')
		for _, v := range []int64{l.part, l.supp, l.number} {
			b = appendInt(b, v)
			b = append(b, '\t')
		}
		for _, v := range []int64{l.quantity * 100, l.price, l.discount, l.tax} {
			b = appendCents(b, v)
			b = append(b, '\t')
		}
		b = append(b, l.returnFlag, '\t', l.status, '\t')
		for _, d := range []int64{l.ship, l.commit, l.receipt} {
			b = appendDate(b, d)
			b = append(b, '\t')
		}
		b = field(b, l.instruct)
		b = field(b, l.mode)
		b = field(b, l.comment)
		b = endRow(b)
	}
	return b
}

// rowReader streams rows into COPY as they are generated: no table is
// held in memory.
type rowReader struct {
	i, n int64
	row  func(i int64, b []byte) []byte
	buf  []byte
	off  int
}

func (r *rowReader) Read(p []byte) (int, error) {
	for r.off == len(r.buf) {
		if r.i == r.n {
			return 0, io.EOF
		}
		r.buf, r.off = r.buf[:0], 0
		for len(r.buf) < 64<<10 && r.i < r.n {
			r.buf = r.row(r.i, r.buf)
			r.i++
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// copyRows runs COPY table FROM STDIN with n rows made by row (i from 0).
func copyRows(ctx context.Context, conn *pgx.Conn, table string, n int64, row func(i int64, b []byte) []byte) error {
	_, err := conn.PgConn().CopyFrom(ctx, &rowReader{n: n, row: row}, "COPY "+table+" FROM STDIN")
	if err != nil {
		return fmt.Errorf("copy %s: %w", table, err)
	}
	return nil
}

// Load fills the tables of Schema, which must exist and be empty, then
// creates Indexes and analyzes the tables.
func Load(ctx context.Context, conn *pgx.Conn, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	for _, t := range c.tables() {
		if err := copyRows(ctx, conn, t.name, t.rows, t.row); err != nil {
			return err
		}
	}
	if _, err := conn.Exec(ctx, Indexes); err != nil {
		return fmt.Errorf("create indexes: %w", err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}

type tableGen struct {
	name string
	rows int64
	row  func(i int64, b []byte) []byte
}

// tables are the generators of the loaded tables. The rows of orders and
// lineitem come from the same per-order streams: lineitem's generator makes
// each order again and writes its lines.
func (c Config) tables() []tableGen {
	s := c.Seed
	return []tableGen{
		{"region", int64(len(regions)), func(i int64, b []byte) []byte {
			r := newRnd(s, streamRegion, uint64(i))
			b = appendInt(b, i)
			b = append(b, '\t')
			b = field(b, regions[i])
			b = field(b, r.text(31, 115))
			return endRow(b)
		}},
		{"nation", int64(len(nations)), func(i int64, b []byte) []byte {
			r := newRnd(s, streamNation, uint64(i))
			b = appendInt(b, i)
			b = append(b, '\t')
			b = field(b, nations[i].name)
			b = appendInt(b, int64(nations[i].region))
			b = append(b, '\t')
			b = field(b, r.text(31, 114))
			return endRow(b)
		}},
		{"part", c.parts(), func(i int64, b []byte) []byte {
			key := i + 1
			r := newRnd(s, streamPart, uint64(key))
			b = appendInt(b, key)
			b = append(b, '\t')
			b = field(b, r.partName())
			m := r.between(1, 5)
			b = field(b, fmt.Sprintf("Manufacturer#%d", m))
			b = field(b, fmt.Sprintf("Brand#%d%d", m, r.between(1, 5)))
			b = field(b, r.pick(typeSyllable1)+" "+r.pick(typeSyllable2)+" "+r.pick(typeSyllable3))
			b = appendInt(b, r.between(1, 50))
			b = append(b, '\t')
			b = field(b, r.pick(containerSyllable1)+" "+r.pick(containerSyllable2))
			b = appendCents(b, retailPrice(key))
			b = append(b, '\t')
			b = field(b, r.text(5, 22))
			return endRow(b)
		}},
		{"supplier", c.suppliers(), func(i int64, b []byte) []byte {
			key := i + 1
			r := newRnd(s, streamSupplier, uint64(key))
			nation := r.between(0, 24)
			b = appendInt(b, key)
			b = append(b, '\t')
			b = field(b, fmt.Sprintf("Supplier#%09d", key))
			b = field(b, r.vstring(10, 40))
			b = appendInt(b, nation)
			b = append(b, '\t')
			b = field(b, r.phone(nation))
			b = appendCents(b, r.between(-99999, 999999))
			b = append(b, '\t')
			b = field(b, r.supplierComment())
			return endRow(b)
		}},
		{"partsupp", c.partsupp(), func(i int64, b []byte) []byte {
			part, n := i/4+1, i%4
			r := newRnd(s, streamPartsupp, uint64(i))
			b = appendInt(b, part)
			b = append(b, '\t')
			b = appendInt(b, suppkey(part, n, c.suppliers()))
			b = append(b, '\t')
			b = appendInt(b, r.between(1, 9999))
			b = append(b, '\t')
			b = appendCents(b, r.between(100, 100000))
			b = append(b, '\t')
			b = field(b, r.text(49, 198))
			return endRow(b)
		}},
		{"customer", c.customers(), func(i int64, b []byte) []byte {
			key := i + 1
			r := newRnd(s, streamCustomer, uint64(key))
			nation := r.between(0, 24)
			b = appendInt(b, key)
			b = append(b, '\t')
			b = field(b, fmt.Sprintf("Customer#%09d", key))
			b = field(b, r.vstring(10, 40))
			b = appendInt(b, nation)
			b = append(b, '\t')
			b = field(b, r.phone(nation))
			b = appendCents(b, r.between(-99999, 999999))
			b = append(b, '\t')
			b = field(b, r.pick(segments))
			b = field(b, r.text(29, 116))
			return endRow(b)
		}},
		{"orders", c.Orders(), func(i int64, b []byte) []byte {
			o := c.loadedOrder(i + 1)
			return o.appendRow(b)
		}},
		{"lineitem", c.Orders(), func(i int64, b []byte) []byte {
			o := c.loadedOrder(i + 1)
			return o.appendLines(b)
		}},
	}
}

// loadedOrder is the i-th (1-based) order of the initial population.
func (c Config) loadedOrder(i int64) order {
	return c.genOrder(newRnd(c.Seed, streamOrder, uint64(i)), orderKey(i))
}

// newOrder is the m-th (0-based) order RF1 inserts.
func (c Config) newOrder(m int64) order {
	return c.genOrder(newRnd(c.Seed, streamNewOrder, uint64(m)), newOrderKey(m))
}

// partName is 5 distinct colours (clause 4.2.3).
func (r rnd) partName() string {
	var picked [5]int
	b := make([]byte, 0, 55)
	for n := 0; n < 5; {
		c := r.IntN(len(colors))
		dup := false
		for _, p := range picked[:n] {
			dup = dup || p == c
		}
		if dup {
			continue
		}
		picked[n] = c
		if n > 0 {
			b = append(b, ' ')
		}
		b = append(b, colors[c]...)
		n++
	}
	return string(b)
}
