"""Recording and confirming service: categories, activities, attendance, confirmation."""
