package hop_test

import (
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
)

// Two hops that differ in any field of their target never share a
// cached result: every field, including one added after this test was
// written, changes the key. A field the key forgot would make two
// different probes share one answer.
func TestKeyHasEveryField(t *testing.T) {
	base := hop.Target{}
	baseKey := base.Key(hop.KindHTTP)
	rnd := rand.New(rand.NewSource(1))
	typ := reflect.TypeFor[hop.Target]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		changed := false
		for try := 0; try < 50 && !changed; try++ {
			v, ok := quick.Value(f.Type, rnd)
			if !ok {
				t.Fatalf("field %s: cannot make a value of %s", f.Name, f.Type)
			}
			if v.IsZero() {
				continue
			}
			tt := base
			reflect.ValueOf(&tt).Elem().Field(i).Set(v)
			if f.Name == "Store" {
				// A store is the same store by its name.
				tt.Store = &config.Store{Name: "spotredis"}
			}
			changed = tt.Key(hop.KindHTTP) != baseKey
		}
		if !changed {
			t.Errorf("Target.%s does not change the cache key: hops that differ only there would share one probe", f.Name)
		}
	}
	if base.Key(hop.KindHTTP) == base.Key(hop.KindTCP) {
		t.Error("the kind does not change the cache key")
	}
	// A store's name is its identity: the same store loaded twice (a
	// reload) keeps its key.
	a, b := hop.Target{Store: &config.Store{Name: "spotredis", Address: "127.0.0.1:1"}}, hop.Target{Store: &config.Store{Name: "spotredis", Address: "127.0.0.1:1"}}
	if a.Key(hop.KindRedis) != b.Key(hop.KindRedis) {
		t.Error("two copies of one store have different keys")
	}
}
