package nat

// IGDFamily is igdFamily, for the external tests.
var IGDFamily = igdFamily
