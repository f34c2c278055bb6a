package embed

import "strings"

// Token classes. A token in an exact class must match exactly between two
// prompts for them to share an answer; see Guard.
const (
	classNone     uint8 = iota
	classNumber         // digits, decimals, number words
	classNegation       // not, no, never, without, against, ...
	classDate           // month and weekday names, seasons, relative days
	classUnit           // units of measure, currencies, time zones
	classLanguage       // natural language names
	classTech           // programming languages, data formats, tools
	classFormat         // output formats: table, json, bullet, essay, ...
	numClasses
)

// Language bits for the function-word language guess used by Guard.
const (
	langEN uint8 = 1 << iota
	langES
	langFR
	langDE
	langIT
	langPT
	langNL
)

// lexEntry is what the lexicon knows about a word form.
type lexEntry struct {
	alias string // canonical spelling ("km" -> "kilometer"); "" for none
	class uint8  // exact class of the canonical form
	stop  bool   // function word or filler: low weight, not content
	langs uint8  // function word of these languages (language guess)
	neg   bool   // a contraction base ("dont" -> "do" + "not")
}

// lexicon maps fnv64(word) to its entry. Keys are hashes so lookups with a
// []byte never allocate; a collision between 64-bit FNV hashes of the few
// hundred listed words and a real word is not a practical concern. It is an
// open-addressing table, read-only after init, several times faster than a
// map on the per-word hot path.
var lexicon lexTable

type lexTable struct {
	keys []uint64 // 0: empty slot
	vals []*lexEntry
	n    int
}

// get returns the entry of hash h, or nil.
func (t *lexTable) get(h uint64) *lexEntry {
	mask := uint64(len(t.keys) - 1)
	for i := mix(h) & mask; ; i = (i + 1) & mask {
		switch t.keys[i] {
		case h:
			return t.vals[i]
		case 0:
			return nil
		}
	}
}

func (t *lexTable) put(h uint64, e *lexEntry) {
	if (t.n+1)*4 > len(t.keys) {
		old, oldVals := t.keys, t.vals
		t.keys, t.vals, t.n = make([]uint64, max(64, 2*len(old))), make([]*lexEntry, max(64, 2*len(old))), 0
		for i, k := range old {
			if k != 0 {
				t.put(k, oldVals[i])
			}
		}
	}
	mask := uint64(len(t.keys) - 1)
	i := mix(h) & mask
	for t.keys[i] != 0 && t.keys[i] != h {
		i = (i + 1) & mask
	}
	if t.keys[i] == 0 {
		t.n++
	}
	t.keys[i], t.vals[i] = h, e
}

func entry(w string) *lexEntry {
	h := fnvString(w)
	if e := lexicon.get(h); e != nil {
		return e
	}
	e := &lexEntry{}
	lexicon.put(h, e)
	return e
}

// Function words and fillers of English prompts. They carry little meaning
// for "do these two prompts want the same answer" and are down-weighted in
// vectors and ignored by Guard's content comparison.
const stopwords = `a an the and or but if then so of to in on at by for with from into onto
about as is are was were be been being am do does did doing done have has had having
i me my mine we us our you your yours he him his she her it its they them their this that
these those there here what which who whom whose when where why how whats hows
can could would should will shall may might must
some any each every all both either more most much many very too also just only really actually
please pls plz thanks thank thx ty hi hello hey ok okay lol kindly
tell explain describe define give show let help want need know like get got
one s t d ll ve re possible way something thing anything yet still
between among within via through across while than per whether because up out off over around vs versus
write make create generate find use using calculate compute mean means convert translate say equal equals
look take work called`

// Request verbs such as explain or tell are fillers here: "explain X" and
// "what is X" ask the same thing.

// Words that must match exactly. Keys are listed in their common spellings;
// they are stemmed like any token before lookup (see buildLexicon).
var classWords = map[uint8]string{
	classNegation: `not no never without against none nothing nobody neither nor except excluding non`,
	classDate: `january february march april june july august september october november december
jan feb mar apr jun jul aug sep sept oct nov dec
monday tuesday wednesday thursday friday saturday sunday weekend weekday
today tomorrow yesterday tonight spring summer autumn winter
christmas easter thanksgiving halloween`,
	classUnit: `kilometer meter centimeter millimeter micrometer nanometer mile yard foot inch
kilogram gram milligram microgram pound ounce ton tonne stone
liter milliliter gallon quart pint cup tablespoon teaspoon
celsius fahrenheit kelvin
second millisecond microsecond nanosecond minute hour day week month year decade century
mph kph knot mpg
bit byte kilobyte megabyte gigabyte terabyte petabyte kb mb gb tb pb kib mib gib tib
px pt em rem dpi
percent usd eur gbp jpy cny inr chf cad aud dollar euro yen yuan rupee franc
psi pascal pa atm acre hectare
calorie kcal joule watt kilowatt kwh volt amp ampere hertz hz khz mhz ghz iu
utc gmt pst pdt est edt cst cdt mst cet cest jst`,
	classLanguage: `english french german spanish italian portuguese dutch polish russian ukrainian
chinese mandarin cantonese japanese korean arabic hebrew hindi bengali urdu persian farsi
thai vietnamese indonesian malay tagalog swahili turkish greek latin catalan basque
swedish norwegian danish finnish icelandic czech slovak hungarian romanian bulgarian
serbian croatian irish welsh`,
	classTech: `python go rust java javascript typescript kotlin swift scala ruby php perl haskell
elixir erlang clojure lua dart julia matlab fortran cobol c cpp csharp fsharp zig
bash shell zsh powershell sql mysql postgresql sqlite mongodb redis cassandra oracle
pandas numpy pytest unittest jest junit react vue angular django flask rails
html css sass markdown latex yaml toml json xml csv ini protobuf graphql
docker dockerfile kubernetes helm terraform ansible cron systemd makefile cmake
mermaid plantuml excel`,
	classFormat: `table bullet bulleted essay poem haiku sonnet limerick rhyming tweet hashtag
emoji diagram chart slide outline paragraph sentence line comma step
email letter memo message snippet pseudocode`,
}

// Aliases fold abbreviations, spelling variants and number words onto one
// canonical form. They are general-purpose, not tied to any data set.
const aliases = `km:kilometer kms:kilometer kilometre:kilometer metre:meter m:meter cm:centimeter
centimetre:centimeter mm:millimeter millimetre:millimeter mi:mile ft:foot feet:foot yd:yard
kg:kilogram kgs:kilogram kilo:kilogram kilos:kilogram g:gram gr:gram mg:milligram
mcg:microgram µg:microgram μg:microgram lb:pound lbs:pound oz:ounce
l:liter litre:liter ml:milliliter millilitre:milliliter gal:gallon tbsp:tablespoon tsp:teaspoon
°c:celsius °f:fahrenheit °k:kelvin °:degree deg:degree
sec:second secs:second ms:millisecond µs:microsecond μs:microsecond ns:nanosecond
min:minute mins:minute hr:hour hrs:hour h:hour yr:year yrs:year
%:percent pct:percent $:usd dollar:usd €:eur euro:eur £:gbp ¥:jpy yen:jpy
golang:go js:javascript py:python postgres:postgresql psql:postgresql mongo:mongodb
sh:shell c++:cpp c#:csharp yml:yaml k8s:kubernetes
dict:dictionary repo:repository db:database info:information config:configuration
u:you ur:your r:are im:i ive:i id:i whats:what hows:how thats:that
zero:0 two:2 three:3 four:4 five:5 six:6 seven:7 eight:8 nine:9 ten:10
eleven:11 twelve:12 thirteen:13 fourteen:14 fifteen:15 sixteen:16 seventeen:17
eighteen:18 nineteen:19 twenty:20 thirty:30 forty:40 fifty:50 sixty:60 seventy:70
eighty:80 ninety:90 hundred:100 thousand:1000 million:1000000 billion:1000000000
once:1 twice:2 dozen:12`

// Contractions written without the apostrophe; the tokenizer turns "don't"
// into the same pair of tokens.
const negContractions = `dont:do doesnt:does didnt:did isnt:is arent:are wasnt:was werent:were
cant:can couldnt:could wont:will wouldnt:would shouldnt:should hasnt:has havent:have
hadnt:had mustnt:must neednt:need aint:is cannot:can`

// Function words of other languages written in Latin script. Words that are
// also common English words (a, come, die, was, in, no, per, me) are left out.
var langWords = map[uint8]string{
	langEN: `the is are what how who when where why which do does did you your my i of to in
for with and can should this that it on be was`,
	langES: `el la los las un una es de del que qué cuál cual cuáles quién quien cómo como
cuánto cuanto cuántos dónde donde por para sobre mi mis tu su sus y o en se lo al está
hay puedo tengo`,
	langFR: `le la les un une des est sont de du que qui quoi quel quelle quels comment combien
où pour sur mon ma mes votre vos ton et ou en je tu il nous vous ce cette dans avec`,
	langDE: `der die das den dem des ein eine einen ist sind und oder wie wo wer warum wann
welche welcher ich du mein meine dein sie wir zu mit für auf nicht zurück von kann`,
	langIT: `il lo la gli le un una è sono di del della che chi cosa quale quanto quanti
dove perché posso mio mia tuo suo e o con su nel alla`,
	langPT: `o um uma é são de da dos das que quem como qual quanto quantos quantas
onde por para sobre meu minha eu você tem tenho e ou na`,
	langNL: `de het een zijn wat hoe wie waar waarom welke ik jij mijn voor op`,
}

func init() { buildLexicon() }

func buildLexicon() {
	lexicon.put(1, &lexEntry{}) // allocate the table before any get
	var buf [maxWord]byte
	stemmed := func(w string) string {
		n := copy(buf[:], w)
		return string(buf[:stem(buf[:n])])
	}
	for _, w := range strings.Fields(stopwords) {
		entry(w).stop = true
	}
	for _, kv := range strings.Fields(negContractions) {
		k, v, _ := strings.Cut(kv, ":")
		e := entry(k)
		e.alias, e.neg = v, true
	}
	for _, kv := range strings.Fields(aliases) {
		k, v, _ := strings.Cut(kv, ":")
		entry(k).alias = v
	}
	for c, list := range classWords {
		for _, w := range strings.Fields(list) {
			entry(stemmed(w)).class = c
		}
	}
	for bit, list := range langWords {
		for _, w := range strings.Fields(list) {
			entry(foldString(w)).langs |= bit
		}
	}
}

// foldString applies the tokenizer's character folding to a lexicon word.
func foldString(w string) string {
	var buf [4 * maxWord]byte
	n := 0
	for _, r := range w {
		n += appendFold(buf[n:], r)
	}
	return string(buf[:n])
}
