mod edge;
