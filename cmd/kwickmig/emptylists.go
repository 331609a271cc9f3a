package main

import "reflect"

// emptyLists returns a copy of v in which every nil slice (in structs,
// maps, slices and pointers, at any depth) is an empty one: a report's
// lists are [] when empty, never null, so tools can iterate them unchecked.
func emptyLists(v any) any {
	if v == nil {
		return nil
	}
	rv := reflect.ValueOf(v)
	c := reflect.New(rv.Type()).Elem()
	c.Set(rv)
	fillLists(c, 0)
	return c.Interface()
}

// fillLists works on a settable v. Pointers are followed into copies, so
// the caller's values are left as they were.
func fillLists(v reflect.Value, depth int) {
	if depth > 32 { // cycles do not occur in reports; stop anyway
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		c := reflect.New(v.Elem().Type())
		c.Elem().Set(v.Elem())
		fillLists(c.Elem(), depth+1)
		v.Set(c)
	case reflect.Interface:
		if v.IsNil() {
			return
		}
		inner := v.Elem()
		c := reflect.New(inner.Type()).Elem()
		c.Set(inner)
		fillLists(c, depth+1)
		v.Set(c)
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				fillLists(f, depth+1)
			}
		}
	case reflect.Slice:
		if v.IsNil() {
			if v.Type().Elem().Kind() != reflect.Uint8 { // []byte is a string in JSON
				v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			}
			return
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(c, v)
		for i := range c.Len() {
			fillLists(c.Index(i), depth+1)
		}
		v.Set(c)
	case reflect.Map:
		if v.IsNil() {
			return
		}
		c := reflect.MakeMapWithSize(v.Type(), v.Len())
		iter := v.MapRange()
		for iter.Next() {
			e := reflect.New(iter.Value().Type()).Elem()
			e.Set(iter.Value())
			fillLists(e, depth+1)
			c.SetMapIndex(iter.Key(), e)
		}
		v.Set(c)
	}
}
